"""The drain's view of a chat (the ChatLane port) built from the fine-grained ports, and one lock keeper per process.

`ComposedChatLane` is the lane for stores without scripts (in memory, embedded mode) and for tests with fakes;
on Redis the dispatcher uses one Lua script per step instead (services/dispatcher/adapters/redis_chat_lane.py).

`LockKeeper` is the schedule that renews every lock a process holds from ONE thread (the service runs it), instead of
a watchdog thread started per update: a handler that runs longer than a third of the lock's TTL keeps its chat; the
others cost a set entry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from libs.domain.ports import ChatMailbox, LaneClaim, LaneItem, Locks, MailboxItem, UpdateDeduplicator

logger = logging.getLogger(__name__)


def lock_key(bot_id: str, chat_key: str) -> str:
    return f"chat:{bot_id}:{chat_key}"


class ComposedChatLane:
    def __init__(self, mailbox: ChatMailbox, locks: Locks, dedup: UpdateDeduplicator) -> None:
        self._mailbox = mailbox
        self._locks = locks
        self._dedup = dedup

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> LaneClaim | None:
        self._mailbox.clear_drain_pending(bot_id, chat_key)
        owner = self._locks.acquire(lock_key(bot_id, chat_key), ttl_seconds)
        if owner is None:
            return None
        # One item at a time: fine-grained stores are cheap to ask, and the head is what the drain works on.
        head = self._mailbox.peek(bot_id, chat_key)
        if head is None:
            return LaneClaim(owner, ())
        return LaneClaim(owner, (self._describe(bot_id, chat_key, head),))

    def _describe(self, bot_id: str, chat_key: str, item: MailboxItem) -> LaneItem:
        envelope = item.envelope
        if envelope is None:
            return LaneItem(item, done=False, attempts=0, retry_at=0.0)
        done = self._dedup.already_done(envelope.bot_id, envelope.update_id)
        attempts, retry_at = self._mailbox.failures(bot_id, chat_key, envelope.update_id)
        return LaneItem(item, done=done, attempts=attempts, retry_at=retry_at)

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        return self._locks.renew(lock_key(bot_id, chat_key), owner, ttl_seconds)

    def complete(
        self,
        bot_id: str,
        chat_key: str,
        owner: str,
        item: MailboxItem,
        update_id: int | None,
        *,
        mark_done: bool,
        ttl_seconds: float,
    ) -> bool:
        if not self._locks.renew(lock_key(bot_id, chat_key), owner, ttl_seconds):
            return False  # another drain holds the chat: it runs this item again
        envelope = item.envelope
        if envelope is not None and mark_done:
            self._dedup.mark_done(envelope.bot_id, envelope.update_id)
        self._mailbox.pop(bot_id, chat_key, item)
        if update_id is not None:
            self._mailbox.clear_failures(bot_id, chat_key, update_id)
        return True

    def complete_and_release(
        self,
        bot_id: str,
        chat_key: str,
        owner: str,
        item: MailboxItem,
        update_id: int | None,
        *,
        mark_done: bool,
    ) -> int | None:
        # The renewal inside `complete` is the ownership check; its TTL does not matter, the lock goes next.
        if not self.complete(bot_id, chat_key, owner, item, update_id, mark_done=mark_done, ttl_seconds=1.0):
            return None
        return self.release(bot_id, chat_key, owner)

    def record_failure(self, bot_id: str, chat_key: str, update_id: int, retry_at: float) -> int:
        return self._mailbox.record_failure(bot_id, chat_key, update_id, retry_at)

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        self._locks.release(lock_key(bot_id, chat_key), owner)
        return self._mailbox.size(bot_id, chat_key)


@dataclass(eq=False)
class Holding:
    """A lock held through the keeper; `lost` turns True when a renewal found it taken or expired."""

    renew: Callable[[], bool]
    interval: float
    due: float
    lost: bool = False
    _keeper: LockKeeper | None = field(default=None, repr=False)

    def __enter__(self) -> Holding:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._keeper is not None:
            self._keeper.drop(self)


class LockKeeper:
    """The renewal schedule of every lock a process holds: each renewed every third of its TTL.

    It starts no thread: `run_once()` renews what is due and says when the next renewal is; `wait(seconds)` sleeps
    until then or until a new lock is held. The service's wiring runs that loop on one thread per process
    (libs/host/lock_keeper.py). Without a runner nothing is renewed, so a holder must then finish within the TTL.
    The condition here is only the handshake between holders (worker threads) and that runner.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._held: set[Holding] = set()
        self._cond = threading.Condition()
        self._changes = 0  # bumped by hold() and wake(): a runner never sleeps past one it did not see
        self._seen = 0

    def hold(self, renew: Callable[[], bool], ttl_seconds: float) -> Holding:
        interval = max(0.01, ttl_seconds / 3)
        holding = Holding(renew, interval, self._monotonic() + interval, _keeper=self)
        with self._cond:
            self._held.add(holding)
            self._changes += 1
            self._cond.notify_all()  # the runner may be sleeping past this lock's first renewal
        return holding

    def drop(self, holding: Holding) -> None:
        with self._cond:
            self._held.discard(holding)

    def held(self) -> int:
        with self._cond:
            return len(self._held)

    def run_once(self) -> float | None:
        """Renews every lock that is due; the seconds until the next one is, or None when nothing is held."""
        with self._cond:
            self._seen = self._changes
            now = self._monotonic()
            due = [h for h in self._held if h.due <= now]
        for holding in due:  # outside the condition: a renewal is a network call
            self._renew(holding)
        with self._cond:
            if not self._held:
                return None
            return max(0.0, min(h.due for h in self._held) - self._monotonic())

    def wait(self, seconds: float | None) -> None:
        """Sleeps `seconds` (None: until something is held), or less when a lock is held or `wake()` is called."""
        with self._cond:
            if self._changes == self._seen:  # else something happened since run_once: run again at once
                self._cond.wait(seconds)

    def wake(self) -> None:
        """Ends a runner's `wait` now (to stop it)."""
        with self._cond:
            self._changes += 1
            self._cond.notify_all()

    def _renew(self, holding: Holding) -> None:
        try:
            kept = holding.renew()
        except Exception:  # a store hiccup: try again soon; the TTL still covers us
            logger.warning("lock renewal failed; retrying", exc_info=False)
            holding.due = self._monotonic() + min(holding.interval, 1.0)
            return
        if not kept:
            holding.lost = True
            self.drop(holding)
            return
        holding.due = self._monotonic() + holding.interval
