"""A lane: items kept in a shared store, worked through in order by one drain at a time under an owner lock.

Both directions are lanes: a chat's inbound mailbox (DrainChat) and a chat's outbox (DrainOutbox). The loop they
share lives here: claim (lock + a batch from the head), work through the batch (the direction's own step),
release, and claim again while items are left, so an item pushed between the last read and the release is not
left waiting for a drain that already returned (the lost-wakeup guard); after `max_items_per_run` the drain
yields its thread and asks to run again at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

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
