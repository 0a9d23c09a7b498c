"""A lane: items kept in a shared store, worked through in order by one drain at a time under an owner lock.

Both directions are lanes: a chat's inbound mailbox (DrainChat) and a chat's outbox (DrainOutbox). The loop they
share lives here: claim (lock + a batch from the head), work through the batch (the direction's own step),
release, and claim again while items are left, so an item pushed between the last read and the release is not
left waiting for a drain that already returned (the lost-wakeup guard); after `max_items_per_run` the drain
yields its thread and asks to run again at once.

`LockKeeper` is the schedule that renews every lane lock a process holds from ONE thread (the service runs it:
src/tgm/host/lock_keeper.py), instead of a watchdog thread started per item: a handler or a send that runs longer than
a third of the lock's TTL keeps its lane; the others cost a set entry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

logger = logging.getLogger(__name__)

ClaimT = TypeVar("ClaimT")


@dataclass(frozen=True)
class BatchOutcome:
    """What working through one claimed batch came to."""

    processed: int = 0  # items that count towards the per-run cap
    busy: bool = False  # the lock was lost: its new holder drains
    run_again_in: float | None = None  # seconds: the batch stopped early (a retry delay, no send slot, a 429)
    left: int | None = None  # items left, when the batch released the lane itself (its last completion did)


@dataclass(frozen=True)
class LaneRun:
    """What one drain run came to: the caller schedules another run when `run_again_in` is set."""

    processed: int = 0
    busy: bool = False  # another drain holds the lane
    run_again_in: float | None = None


def drain_lane(
    claim: Callable[[], ClaimT | None],
    work: Callable[[ClaimT], BatchOutcome],
    release: Callable[[ClaimT], int],
    max_items_per_run: int,
) -> LaneRun:
    """Claims, works and releases batches until the lane is empty, busy, or a batch asks to run again later.

    `claim` returns None when another drain holds the lane; `release` returns the items left in it.
    """
    processed = 0
    while True:
        held = claim()
        if held is None:
            return LaneRun(processed, busy=True)
        batch: BatchOutcome | None = None
        try:
            batch = work(held)
        finally:
            left = batch.left if batch is not None and batch.left is not None else release(held)
        processed += batch.processed
        if batch.run_again_in is not None:
            return LaneRun(processed, run_again_in=batch.run_again_in)
        if batch.busy:
            return LaneRun(processed, busy=True)
        if left == 0:  # lost-wakeup guard: an item pushed before the release is seen by the claim below
            return LaneRun(processed)
        if processed >= max_items_per_run:
            return LaneRun(processed, run_again_in=0.0)  # yield the thread to other lanes


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
    (src/tgm/host/lock_keeper.py). Without a runner nothing is renewed, so a holder must then finish within the TTL.
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
