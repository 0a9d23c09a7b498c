"""The outbound side's own ports: the outbox store and lane, the send limiter, the direct-send gate, and who learns
of users that blocked a bot. Adapters: store.py, outbox_lane.py, send_gate.py (the limiter: adapters/redis_abuse.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class OutboxStore(Protocol):
    def push(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> bool:
        """Appends unless `call_id` was queued before (then False)."""
        ...

    def push_and_mark(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> tuple[bool, bool]:
        """`push`, and raise the lane's "drain due" flag: (pushed, flag was down so the caller schedules a drain)."""
        ...

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        """A drain starts on the lane: a call pushed from now on must schedule another one."""
        ...

    def peek(self, bot_id: str, chat_key: str) -> bytes | None: ...
    def pop(self, bot_id: str, chat_key: str, raw: bytes) -> bool: ...
    def size(self, bot_id: str, chat_key: str) -> int: ...
    def is_sent(self, call_id: str) -> bool: ...
    def mark_sent(self, call_id: str) -> None: ...
    def record_failure(self, call_id: str) -> int: ...
    def clear_failures(self, call_id: str) -> None: ...


class SendLimiter(Protocol):
    def acquire(self, bot_id: str, chat_id: int | None) -> float: ...

    def pause(self, bot_id: str, seconds: float) -> None:
        """Telegram said 429: no slot for any of the bot's chats for `seconds` (never shortens a pause)."""
        ...


class BlockedUsers(Protocol):
    """Learns of subscribers who blocked a bot (issue 15): a rare failure path, never called per update."""

    def blocked(self, bot_id: str, telegram_user_id: int) -> None:
        """Best effort: never raises."""
        ...


class DirectSendGate(Protocol):
    def open(self, bot_id: str, chat_key: str, chat_id: int | None, call_id: str) -> bool:
        """True, with a send slot taken, when nothing waits on the lane before this call, the call was not sent
        by an earlier run, and the limiter has a slot now; False (nothing taken) otherwise."""
        ...


@dataclass(frozen=True)
class OutboxClaim:
    owner: str
    items: tuple[tuple[bytes, bool], ...]  # (raw call, already sent), oldest first


class OutboxLane(Protocol):
    """A lane of the outbox as DrainOutbox uses it: claim (flag, lock and a batch read), complete, release."""

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> OutboxClaim | None: ...

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        """Extends the lane's lock if `owner` still holds it (the lock keeper calls it while a send runs)."""
        ...

    def complete(
        self, bot_id: str, chat_key: str, owner: str, raw: bytes, call_id: str | None, *, sent: bool, ttl_seconds: float
    ) -> bool:
        """If `owner` still holds the lane: marks the call sent (when `sent`), pops exactly `raw` from the head and
        clears its failures. False, changing nothing, when the lock was lost."""
        ...

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        """Releases the lane's lock if still ours; the number of calls left."""
        ...
