"""The dispatcher's side of the event trail: events leave on one background thread, bounded, never raising."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from tgm.domain.events import Event, EventKind, Outcome
from tgm.registry_client.events import BackgroundEventRecorder, event_request

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def refused(user: int = 7) -> Event:
    return Event(NOW, EventKind.CALLBACK_REFUSED, f"telegram:{user}", None, Outcome.REFUSED, {"reason": "invalid"})


class Blocking:
    """Records once released; counts calls."""

    def __init__(self, fail: bool = False) -> None:
        self.release = threading.Event()
        self.recorded: list[Event] = []
        self.fail = fail

    def record(self, event: Event) -> None:
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("registry down")
        self.recorded.append(event)


def wait_for(condition, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def test_record_returns_at_once_and_the_event_is_sent_later() -> None:
    inner = Blocking()
    recorder = BackgroundEventRecorder(inner)
    started = time.monotonic()
    recorder.record(refused())
    assert time.monotonic() - started < 1.0 and inner.recorded == []  # the registry is still "busy"
    inner.release.set()
    assert wait_for(lambda: inner.recorded == [refused()])


def test_a_flood_is_bounded_and_drops_the_excess_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    inner = Blocking()
    recorder = BackgroundEventRecorder(inner, max_pending=3)
    for user in range(1, 11):
        recorder.record(refused(user))
    dropped = [r for r in caplog.records if r.getMessage() == "event dropped: too many waiting"]
    # One taken by the sender thread before it blocked (at most), three waiting: six or seven were dropped.
    assert 6 <= len(dropped) <= 7
    inner.release.set()
    assert wait_for(lambda: len(inner.recorded) == 10 - len(dropped))


def test_a_failed_send_is_logged_and_the_next_one_still_goes(caplog: pytest.LogCaptureFixture) -> None:
    inner = Blocking(fail=True)
    inner.release.set()
    recorder = BackgroundEventRecorder(inner)
    recorder.record(refused())
    assert wait_for(lambda: "event not recorded" in caplog.text)
    inner.fail = False
    recorder.record(refused(8))
    assert wait_for(lambda: [e.actor for e in inner.recorded] == ["telegram:8"])


def test_the_request_carries_a_telegram_actor_as_its_id_and_any_other_as_nothing() -> None:
    request = event_request(refused(42))
    assert (request.kind, request.telegram_user_id, request.outcome) == ("callback_refused", 42, "refused")
    assert dict(request.details) == {"reason": "invalid"} and request.bot_id == ""
    operator = Event(NOW, EventKind.KEY_ROTATED, "operator", None, Outcome.DONE, {"version": "3"})
    assert event_request(operator).telegram_user_id == 0  # the registry takes the actor from the certificate
