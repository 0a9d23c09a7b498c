"""The registry's retention thread: purges at start and on every turn, survives a failing database, stops on its
stop event, and stays off with an interval of 0."""

from __future__ import annotations

import logging
import threading

import pytest

from tgm.services.botregistry.event_retention import EventRetention


class Purge:
    def __init__(self, results: list[int | Exception]) -> None:
        self.results = results
        self.calls = 0
        self.third = threading.Event()

    def __call__(self) -> int:
        self.calls += 1
        if self.calls >= 3:
            self.third.set()
        result = self.results[min(self.calls, len(self.results)) - 1]
        if isinstance(result, Exception):
            raise result
        return result


def test_a_failing_purge_is_logged_and_the_next_turn_runs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tgm.services.botregistry.event_retention")
    purge = Purge([RuntimeError("database down"), 2, 0])
    stop = threading.Event()
    thread = EventRetention(purge, interval_seconds=0.01).start(stop)
    assert thread is not None
    assert purge.third.wait(10)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    messages = [record.getMessage() for record in caplog.records]
    assert "event purge failed" in messages and "expired events purged" in messages


def test_purge_once_reports_the_count_or_none() -> None:
    assert EventRetention(Purge([3]), 0).purge_once() == 3
    assert EventRetention(Purge([RuntimeError("x")]), 0).purge_once() is None


def test_an_interval_of_zero_starts_no_thread() -> None:
    purge = Purge([1])
    assert EventRetention(purge, interval_seconds=0).start(threading.Event()) is None
    assert purge.calls == 0
