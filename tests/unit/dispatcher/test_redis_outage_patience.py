"""Issue 10: a worker that loses Redis mid-message keeps the message and runs it again once Redis answers, instead
of handing it to a Dramatiq retry that cannot be enqueued (the message would stay unacked, never redelivered)."""

from __future__ import annotations

import pytest
import redis

from tgm.services.dispatcher.workers.actors import UpdateHandlingFailed, _guarded


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_work_runs_again_in_place_until_redis_answers() -> None:
    clock, runs = Clock(), []

    def work() -> None:
        runs.append(clock.now)
        if len(runs) <= 5:
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    _guarded("chat drain", {}, work, patience_seconds=60, sleep=clock.sleep, monotonic=clock.monotonic)
    assert len(runs) == 6
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0], "backs off, capped at 2 s"


def test_redis_loading_its_data_after_a_restart_also_waits() -> None:
    clock, runs = Clock(), []

    def work() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory")

    _guarded("chat drain", {}, work, sleep=clock.sleep, monotonic=clock.monotonic)
    assert len(runs) == 2


def test_after_its_patience_the_failure_goes_to_dramatiqs_retry_sanitized() -> None:
    clock = Clock()

    def work() -> None:
        raise redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:6379")

    with pytest.raises(UpdateHandlingFailed) as raised:
        _guarded("chat drain", {}, work, patience_seconds=10, sleep=clock.sleep, monotonic=clock.monotonic)
    assert clock.now <= 10 and "TimeoutError" in str(raised.value)
    assert raised.value.__context__ is None


def test_other_failures_are_not_retried_in_place() -> None:
    runs = []

    def work() -> None:
        runs.append(1)
        raise ValueError("a bug")

    with pytest.raises(UpdateHandlingFailed):
        _guarded("chat drain", {}, work, sleep=lambda s: None)
    assert runs == [1]
