"""Broadcasts (issue 15): one admin's message to every active subscriber of one of their bots.

A broadcast is a draft until its admin presses the signed confirm button, then runs in small batches
(src/tgm/domain/use_cases/broadcast.py) until done or cancelled. Each recipient is sent at most once: a recipient's
mark is claimed *before* the send and settled after it, so a worker killed between the two leaves a claimed mark
that the next run counts as failed instead of sending again (the DEFER_SENT_MARKS lesson: a mark written after
the send leaves a window for a double; here that window is closed at the price of possibly missing that one
recipient, which the progress shows as failed).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from tgm.domain.messages import render

MAX_BROADCAST_CHARS = 4096  # Telegram's limit on a message's text (after entities are parsed)
_SAFE_LINK_SCHEMES = ("http://", "https://", "tg://")


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
    text: str  # HTML (parse_mode HTML), built by html_from_entities
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


# -- the message: Telegram's text + entities as safe HTML ------------------------------------------------------

_SIMPLE_TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "spoiler": "tg-spoiler",
    "code": "code",
    "blockquote": "blockquote",
}


def _open_tag(entity: dict[str, Any]) -> tuple[str, str] | None:
    """(opening, closing) HTML for an entity, or None for one shown as plain text (mentions, hashtags, URLs…)."""
    kind = entity.get("type")
    if kind in _SIMPLE_TAGS:
        tag = _SIMPLE_TAGS[str(kind)]
        return f"<{tag}>", f"</{tag}>"
    if kind == "expandable_blockquote":
        return "<blockquote expandable>", "</blockquote>"
    if kind == "pre":
        language = entity.get("language")
        if isinstance(language, str) and language.replace("-", "").replace("_", "").isalnum():
            return f'<pre><code class="language-{language}">', "</code></pre>"
        return "<pre>", "</pre>"
    if kind == "text_link":
        url = entity.get("url")
        if isinstance(url, str) and url.lower().startswith(_SAFE_LINK_SCHEMES):
            return f'<a href="{html.escape(url, quote=True)}">', "</a>"
        return None
    if kind == "text_mention":
        user = entity.get("user")
        if isinstance(user, dict) and isinstance(user.get("id"), int):
            return f'<a href="tg://user?id={int(user["id"])}">', "</a>"
    return None


def html_from_entities(text: str, entities: object) -> str:
    """Telegram's message text and its `entities` (offsets in UTF-16 code units) as HTML for parse_mode HTML.

    The text is escaped; only formatting entities become tags (whitelisted, link schemes http/https/tg), so
    nothing the sender typed can inject markup. Entities that cross each other are closed and reopened.
    """
    units = text.encode("utf-16-le")
    length = len(units) // 2
    spans: list[tuple[int, int, str, str]] = []
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        offset, size = entity.get("offset"), entity.get("length")
        tags = _open_tag(entity)
        if tags is None or not isinstance(offset, int) or not isinstance(size, int) or size <= 0 or offset < 0:
            continue
        end = min(offset + size, length)
        if offset < end:
            spans.append((offset, end, *tags))
    spans.sort(key=lambda span: (span[0], -span[1]))

    def piece(start: int, stop: int) -> str:
        return html.escape(units[2 * start : 2 * stop].decode("utf-16-le", errors="replace"), quote=False)

    out: list[str] = []
    stack: list[tuple[int, int, str, str]] = []
    boundaries = sorted({0, length, *(s[0] for s in spans), *(s[1] for s in spans)})
    index = 0
    for here, after in zip(boundaries, [*boundaries[1:], length], strict=True):
        # Close what ends here and only what was opened inside it (reopening those that go on), then open what
        # starts here. Entities outside the deepest one ending here stay open: nesting is kept, not flattened.
        ending = [depth for depth, span in enumerate(stack) if span[1] == here]
        if ending:
            reopen = []
            while len(stack) > ending[0]:
                span = stack.pop()
                out.append(span[3])
                if span[1] > here:
                    reopen.append(span)
            for span in reversed(reopen):
                out.append(span[2])
                stack.append(span)
        while index < len(spans) and spans[index][0] == here:
            out.append(spans[index][2])
            stack.append(spans[index])
            index += 1
        if after > here:
            out.append(piece(here, after))
    while stack:
        out.append(stack.pop()[3])
    return "".join(out)


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


def progress_text(broadcast: Broadcast, now: float) -> str:
    """The progress message (HTML; the values are numbers and an escaped username)."""
    key = {
        BroadcastState.DONE: "mgr_broadcast_done",
        BroadcastState.CANCELLED: "mgr_broadcast_cancelled",
    }.get(broadcast.state, "mgr_broadcast_progress")
    return render(
        key,
        broadcast.lang,
        username=html.escape(broadcast.username, quote=False),
        sent=broadcast.sent,
        failed=broadcast.failed,
        blocked=broadcast.blocked,
        remaining=broadcast.remaining,
        total=broadcast.total,
        eta=_duration(eta_seconds(broadcast, now)),
    )
