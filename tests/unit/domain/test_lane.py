"""The loop every lane shares (src/tgm/domain/lane.py): claim, work, release, claim again while items are left."""

from __future__ import annotations

import pytest

from tgm.domain.lane import BatchOutcome, LaneRun, drain_lane


class ListLane:
    """A lane of numbers, one per claim; `pushed_on_release` arrives between a batch's read and its release."""

    def __init__(self, items: list[int], *, held_by_other: bool = False) -> None:
        self.items = items
        self.held_by_other = held_by_other
        self.pushed_on_release: list[int] = []
        self.releases = 0

    def claim(self) -> list[int] | None:
        return None if self.held_by_other else self.items[:1]

    def release(self, claim: list[int]) -> int:
        self.releases += 1
        self.items.extend(self.pushed_on_release)
        self.pushed_on_release = []
        return len(self.items)

    def work(self, claim: list[int]) -> BatchOutcome:
        for _ in claim:
            self.items.pop(0)
        return BatchOutcome(len(claim))


def test_a_drain_claims_again_while_items_are_left_even_one_pushed_before_the_release() -> None:
    lane = ListLane([1, 2])
    lane.pushed_on_release = [3]
    assert drain_lane(lane.claim, lane.work, lane.release, 10) == LaneRun(3)
    assert lane.items == [] and lane.releases == 3


def test_a_lane_held_by_another_drain_is_left_to_it() -> None:
    lane = ListLane([1], held_by_other=True)
    assert drain_lane(lane.claim, lane.work, lane.release, 10) == LaneRun(busy=True)


def test_a_drain_yields_its_thread_after_the_per_run_cap() -> None:
    lane = ListLane([1, 2, 3, 4])
    assert drain_lane(lane.claim, lane.work, lane.release, 2) == LaneRun(2, run_again_in=0.0)
    assert lane.items == [3, 4]


def test_a_batch_that_asks_to_run_later_or_lost_its_lock_ends_the_run_after_releasing() -> None:
    lane = ListLane([1, 2])
    assert drain_lane(lane.claim, lambda c: BatchOutcome(0, run_again_in=1.5), lane.release, 10) == LaneRun(
        run_again_in=1.5
    )
    assert drain_lane(lane.claim, lambda c: BatchOutcome(1, busy=True), lane.release, 10) == LaneRun(1, busy=True)
    assert lane.releases == 2


def test_a_batch_that_released_the_lane_itself_is_not_released_twice() -> None:
    lane = ListLane([1])
    assert drain_lane(lane.claim, lambda c: BatchOutcome(1, left=0), lane.release, 10) == LaneRun(1)
    assert lane.releases == 0


def test_a_failing_batch_still_releases_the_lane() -> None:
    lane = ListLane([1])

    def fail(claim: list[int]) -> BatchOutcome:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        drain_lane(lane.claim, fail, lane.release, 10)
    assert lane.releases == 1
