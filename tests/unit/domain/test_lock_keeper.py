"""LockKeeper: the domain's schedule renews every held lock when `run_once` is called (it starts no thread); a lost
lock is reported; src/tgm/host's runner is the one thread per process that calls it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tgm.domain.lane import LockKeeper
from tgm.host.lock_keeper import LockKeeperThread


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("condition not met before the deadline")


def test_the_keeper_starts_no_thread() -> None:
    before = threading.active_count()
    keeper = LockKeeper()
    with keeper.hold(lambda: True, 0.03):
        assert threading.active_count() == before


def test_run_once_renews_what_is_due_every_third_of_the_ttl_and_says_when_next() -> None:
    clock = Ticks()
    keeper = LockKeeper(monotonic=clock)
    renewals: list[str] = []
    assert keeper.run_once() is None, "nothing held: nothing to wait for"
    with keeper.hold(lambda: renewals.append("a") or True, 3.0), keeper.hold(lambda: renewals.append("b") or True, 9.0):
        assert keeper.run_once() == 1.0 and renewals == []
        clock.now = 1.0
        assert keeper.run_once() == 1.0 and renewals == ["a"]
        clock.now = 3.0
        keeper.run_once()
        assert sorted(renewals) == ["a", "a", "b"]
    clock.now = 10.0
    assert keeper.run_once() is None and keeper.held() == 0
    assert sorted(renewals) == ["a", "a", "b"], "a dropped lock is never renewed"


def test_a_renewal_that_finds_the_lock_taken_marks_it_lost() -> None:
    clock = Ticks()
    keeper = LockKeeper(monotonic=clock)
    with keeper.hold(lambda: False, 3.0) as holding:
        clock.now = 1.0
        keeper.run_once()
        assert holding.lost
        assert keeper.held() == 0


def test_a_failing_renewal_is_retried_soon_not_reported_lost() -> None:
    clock = Ticks()
    keeper = LockKeeper(monotonic=clock)
    calls: list[int] = []

    def flaky() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("redis hiccup")
        return True

    with keeper.hold(flaky, 30.0) as holding:
        clock.now = 10.0
        assert keeper.run_once() == 1.0, "retried within a second, not after a whole interval"
        clock.now = 11.0
        keeper.run_once()
        clock.now = 12.0
        keeper.run_once()
        assert len(calls) == 3 and not holding.lost


def test_the_runner_renews_held_locks_until_dropped_and_stops() -> None:
    keeper = LockKeeper()
    runner = LockKeeperThread(keeper)
    runner.start()
    try:
        renewals = {"a": 0}

        def renew() -> bool:
            renewals["a"] += 1
            return True

        time.sleep(0.05)  # the runner idles with nothing held, then a lock arrives: it must wake for it
        with keeper.hold(renew, 0.06):
            wait_until(lambda: renewals["a"] >= 3)
        seen = renewals["a"]
        time.sleep(0.1)
        assert renewals["a"] == seen
    finally:
        runner.stop()
    assert not runner.alive


def test_a_short_lock_held_while_the_runner_sleeps_for_a_long_one_is_renewed_in_time() -> None:
    keeper = LockKeeper()
    runner = LockKeeperThread(keeper)
    runner.start()
    renewed = threading.Event()
    try:
        with keeper.hold(lambda: True, 300.0):
            time.sleep(0.05)  # the runner now sleeps ~100 s for the long lock
            with keeper.hold(lambda: renewed.set() or True, 0.03):
                assert renewed.wait(5)
    finally:
        runner.stop()
