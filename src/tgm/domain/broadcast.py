"""Broadcasts (issue 15): one admin's message to every active subscriber of one of their bots.

A broadcast is a draft until its admin presses the signed confirm button, then runs in small batches
(src/tgm/domain/use_cases/broadcast.py) until done or cancelled. Each recipient is sent at most once: a recipient's
mark is claimed *before* the send and settled after it, so a worker killed between the two leaves a claimed mark
that the next run counts as failed instead of sending again (the DEFER_SENT_MARKS lesson: a mark written after
the send leaves a window for a double; here that window is closed at the price of possibly missing that one
recipient, which the progress shows as failed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from tgm.domain.view import Text, Value

MAX_BROADCAST_CHARS = 4096  # Telegram's limit on a message's text (after entities are parsed)


class BroadcastState(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """A recipient's settled mark (SENDING: claimed, the send not known to have happened)."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"


class StartResult(StrEnum):
    STARTED = "started"
    BUSY = "busy"  # another broadcast of the same bot is running
    GONE = "gone"  # expired, already started or cancelled


@dataclass(frozen=True)
class Broadcast:
    id: str  # a UUID: it travels in the signed buttons' 16-byte reference field
    bot_id: str
    admin_id: int
    chat_id: int  # the admin's chat with the manager bot: preview, progress
    manager_id: str  # the manager bot, which edits the progress message
    username: str  # the bot's, for the admin's view
    lang: str | None
    text: str  # the body in the look it is sent in (ManagerView.broadcast_body: the admin's formatting kept)
    state: BroadcastState = BroadcastState.DRAFT
    message_id: int = 0  # the progress message in the admin's chat
    total: int = 0  # active subscribers when it started
    cursor: int = 0  # the highest Telegram user id handled so far (subscribers go by id, ascending)
    sent: int = 0
    failed: int = 0
    blocked: int = 0
    started_at: float = 0.0  # unix seconds
    finished_at: float = 0.0
    cancel_requested: bool = False

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.blocked

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.handled)

    @property
    def finished(self) -> bool:
        return self.state in (BroadcastState.DONE, BroadcastState.CANCELLED)


class BroadcastStore(Protocol):
    """Broadcasts and their progress, durable across worker crashes (Redis with AOF, or memory embedded)."""

    def create(self, draft: Broadcast, ttl_seconds: int) -> None:
        """Stores a draft that lapses after `ttl_seconds` unless started."""
        ...

    def get(self, broadcast_id: str) -> Broadcast | None: ...

    def start(self, broadcast_id: str, message_id: int, total: int, now: float) -> StartResult:
        """Draft → running, once; BUSY when the bot already runs a broadcast."""
        ...

    def running_for(self, bot_id: str) -> str | None:
        """The id of the bot's running broadcast, if any."""
        ...

    def request_cancel(self, broadcast_id: str, now: float) -> bool:
        """A draft is cancelled at once; a running one is flagged (its runner stops within a batch). False when it
        was finished or unknown."""
        ...

    def claim(self, broadcast_id: str, user_id: int) -> Outcome | None:
        """Claims the recipient before the send: None when claimed now, else the mark an earlier run left."""
        ...

    def settle(self, broadcast_id: str, user_id: int, outcome: Outcome) -> None:
        """Records a claimed recipient's outcome (counted once) and moves the cursor to it."""
        ...

    def release(self, broadcast_id: str, user_id: int) -> None:
        """Drops a claim whose send certainly did not happen (a 429): the recipient is tried again."""
        ...

    def advance(self, broadcast_id: str, cursor: int) -> None:
        """Moves the cursor past recipients skipped without a claim (never backwards)."""
        ...

    def finish(self, broadcast_id: str, state: BroadcastState, now: float) -> None:
        """Done or cancelled: the bot may run another broadcast; the record is kept a while, then expires."""
        ...

    def progress_due(self, broadcast_id: str, interval_seconds: float) -> bool:
        """True at most once per `interval_seconds` for a broadcast: the live progress edit's rate bound."""
        ...


class BroadcastScheduler(Protocol):
    def schedule(self, broadcast_id: str, delay_seconds: float = 0.0) -> None:
        """Runs the broadcast's next batch (a `run_broadcast` message), after `delay_seconds`."""
        ...


def with_outcome(broadcast: Broadcast, outcome: Outcome) -> Broadcast:
    """The counters after one more recipient settled (in-memory stores and fakes)."""
    if outcome is Outcome.SENT:
        return replace(broadcast, sent=broadcast.sent + 1)
    if outcome is Outcome.BLOCKED:
        return replace(broadcast, blocked=broadcast.blocked + 1)
    return replace(broadcast, failed=broadcast.failed + 1)


# -- the admin's view ------------------------------------------------------------------------------------------


def eta_seconds(broadcast: Broadcast, now: float) -> int | None:
    """Seconds left at the pace so far; None before anything was handled."""
    elapsed = now - broadcast.started_at
    if broadcast.handled <= 0 or elapsed <= 0:
        return None
    return round(broadcast.remaining * elapsed / broadcast.handled)


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "…"
    minutes, rest = divmod(max(0, seconds), 60)
    return f"{minutes}:{rest:02d}"


def progress_text(broadcast: Broadcast, now: float) -> Text:
    """The progress message: the broadcast's state with its counts, the bot's username and the time left."""
    key = {
        BroadcastState.DONE: "mgr_broadcast_done",
        BroadcastState.CANCELLED: "mgr_broadcast_cancelled",
    }.get(broadcast.state, "mgr_broadcast_progress")
    values: dict[str, Value] = {
        "username": broadcast.username,
        "sent": broadcast.sent,
        "failed": broadcast.failed,
        "blocked": broadcast.blocked,
        "remaining": broadcast.remaining,
        "total": broadcast.total,
        "eta": _duration(eta_seconds(broadcast, now)),
    }
    return Text(key, values)
