"""Sent marks of a chat drain's direct sends, written by the update's completion script (issue 8), when
DEFER_SENT_MARKS is on (off by default: the window below is too wide for "exactly one reply").

A reply sent straight from the drain (DirectSend) must be marked sent so that a re-run of the same update does not
send it again. Written on its own that mark is one Redis round trip per reply; here it waits, on the worker thread
that sent it, for the update's completion, which writes it in the same script (RedisChatLane). The marks are written
before the completion checks its lock, so a drain that lost its chat still leaves them for the new holder.

What this widens: a crash after Telegram accepted the reply and before the completion (the rest of the handler and
the inline outbox sends) lets a re-run send that reply again; before, the window ended at the mark's own write. The
same for a drain that lost its chat lock (its keeper missed renewals for a whole lock TTL): a new holder re-running
the update before this drain's release writes the marks sends the reply again.
Either way the update itself is at-least-once there (docs/DESIGN.md, "Exactly one reply").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

OUTBOX_PREFIX = "tgm:obox"
SENT_TTL_SECONDS = 24 * 3600


def sent_mark_key(call_id: str, prefix: str = OUTBOX_PREFIX) -> str:
    """The key that says an outbound call was sent (RedisOutboxStore, the send gate and the completion scripts)."""
    return f"{prefix}-sent:{call_id}"


class DeferredSentMarks:
    """Call ids sent on this thread whose marks are not written yet; taken by the next completion on the thread."""

    def __init__(self, write_now: Callable[[str], None], prefix: str = OUTBOX_PREFIX) -> None:
        self._write_now = write_now  # one call per mark, for the paths that write no completion
        self._prefix = prefix
        self._local = threading.local()

    def _pending(self) -> list[str]:
        pending: list[str] | None = getattr(self._local, "ids", None)
        if pending is None:
            pending = self._local.ids = []
        return pending

    def defer(self, call_id: str) -> None:
        self._pending().append(call_id)

    def take(self) -> list[str]:
        """The call ids deferred on this thread, now the caller's to write (put_back if that fails)."""
        pending = self._pending()
        taken = list(pending)
        pending.clear()
        return taken

    def put_back(self, call_ids: Sequence[str]) -> None:
        self._pending()[:0] = call_ids

    def keys(self, call_ids: Sequence[str]) -> list[str]:
        return [sent_mark_key(call_id, self._prefix) for call_id in call_ids]

    def write_pending(self) -> None:
        """Writes what this thread deferred, one round trip each (the failure and lost-lock paths)."""
        taken = self.take()
        for index, call_id in enumerate(taken):
            try:
                self._write_now(call_id)
            except Exception:
                self.put_back(taken[index:])
                raise
