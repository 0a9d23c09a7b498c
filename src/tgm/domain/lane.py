"""A lane: items kept in a shared store, worked through in order by one drain at a time under an owner lock.

Both directions are lanes: a chat's inbound mailbox (DrainChat) and a chat's outbox (DrainOutbox). The loop they
share lives here: claim (lock + a batch from the head), work through the batch (the direction's own step),
release, and claim again while items are left, so an item pushed between the last read and the release is not
left waiting for a drain that already returned (the lost-wakeup guard); after `max_items_per_run` the drain
yields its thread and asks to run again at once.

`LockKeeper` renews every lane lock a process holds from ONE thread, instead of a watchdog thread started per
item: a handler or a send that runs longer than a third of the lock's TTL keeps its lane; the others cost a dict
entry.
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
    """Renews held locks every third of their TTL from one daemon thread, which exits when nothing is held."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._held: set[Holding] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, renew: Callable[[], bool], ttl_seconds: float) -> Holding:
        interval = max(0.01, ttl_seconds / 3)
        holding = Holding(renew, interval, self._monotonic() + interval, _keeper=self)
        with self._cond:
            self._held.add(holding)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lock-keeper", daemon=True)
                self._thread.start()
            self._cond.notify()
        return holding

    def drop(self, holding: Holding) -> None:
        with self._cond:
            self._held.discard(holding)
            if not self._held:
                self._cond.notify()  # let an idle thread end now rather than at its next renewal time

    def held(self) -> int:
        with self._cond:
            return len(self._held)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._held:
                    self._thread = None
                    return
                now = self._monotonic()
                due = [h for h in self._held if h.due <= now]
                if not due:
                    self._cond.wait(min(h.due for h in self._held) - now)
                    continue
            for holding in due:  # outside the lock: a renewal is a network call
                self._renew(holding)

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
