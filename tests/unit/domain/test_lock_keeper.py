"""LockKeeper: one thread renews every held lock; a lost lock is reported; the thread ends when nothing is held."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tgm.domain.lane import LockKeeper


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("condition not met before the deadline")


def test_held_locks_are_renewed_until_dropped() -> None:
    keeper = LockKeeper()
    renewals = {"a": 0, "b": 0}

    def renew(name: str) -> Callable[[], bool]:
        def call() -> bool:
            renewals[name] += 1
            return True

        return call

    with keeper.hold(renew("a"), 0.06), keeper.hold(renew("b"), 0.06):
        wait_until(lambda: renewals["a"] >= 3 and renewals["b"] >= 3)
    seen = dict(renewals)
    wait_until(lambda: keeper.held() == 0)
    time.sleep(0.1)  # a dropped lock gets no further renewals (checked after the fact, not as synchronisation)
    assert renewals == seen


def test_a_renewal_that_finds_the_lock_taken_marks_it_lost() -> None:
    keeper = LockKeeper()
    with keeper.hold(lambda: False, 0.03) as holding:
        wait_until(lambda: holding.lost)
    assert keeper.held() == 0


def test_a_failing_renewal_is_retried_not_reported_lost() -> None:
    keeper = LockKeeper()
    calls: list[int] = []

    def flaky() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("redis hiccup")
        return True

    with keeper.hold(flaky, 0.03) as holding:
        wait_until(lambda: len(calls) >= 4)
        assert not holding.lost


def test_the_keeper_thread_ends_when_nothing_is_held_and_starts_again() -> None:
    keeper = LockKeeper()
    with keeper.hold(lambda: True, 30.0):
        assert any(t.name == "lock-keeper" for t in threading.enumerate())
    wait_until(lambda: keeper._thread is None)
    renewed = threading.Event()
    with keeper.hold(lambda: renewed.set() or True, 0.03):
        assert renewed.wait(10)
