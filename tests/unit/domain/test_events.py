"""The event trail's domain: what an event may hold (never a secret) and the retention job on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tgm.domain.clock import ManualClock
from tgm.domain.events import (
    Event,
    EventFilter,
    EventKind,
    Outcome,
    PurgeExpiredEvents,
    UnsafeEventDetails,
    telegram_actor,
)
from tgm.services.botregistry.adapters.memory import InMemoryEventTrail

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmnop"


def event(at: datetime = NOW, bot_id: str | None = "bot-1", kind: EventKind = EventKind.BOT_DISABLED) -> Event:
    return Event(at, kind, telegram_actor(42), bot_id, Outcome.DONE, {"via": "dispatcher"})


@pytest.mark.parametrize(
    "details",
    [
        {"token": "x"},
        {"webhook_secret": "x"},
        {"ciphertext": "x"},
        {"secret_sha256_hash": "x"},
        {"welcome_text": "hi"},
        {"message": "hi"},
        {"note": TOKEN},  # a token-shaped value under an innocent name
        {"note": "x" * 65},
        {"note": "two\nlines"},
        {"not an identifier": "x"},
        {f"k{i}": "v" for i in range(9)},
    ],
)
def test_details_that_could_carry_a_secret_or_text_are_refused(details: dict[str, str]) -> None:
    with pytest.raises(UnsafeEventDetails):
        Event(NOW, EventKind.SETTINGS_CHANGED, "operator", None, Outcome.DONE, details)


def test_short_labels_are_kept_and_copied() -> None:
    details = {"change": "SetWelcome", "via": "operator", "as_owner": "42"}
    made = Event(NOW, EventKind.SETTINGS_CHANGED, "operator", "bot-1", Outcome.DONE, details)
    details["change"] = "changed afterwards"
    assert made.details == {"change": "SetWelcome", "via": "operator", "as_owner": "42"}


@pytest.mark.parametrize(
    "changes",
    [{"at": datetime(2026, 1, 1)}, {"actor": ""}, {"actor": "x" * 65}, {"bot_id": ""}, {"bot_id": "b" * 37}],
)
def test_an_event_needs_an_aware_time_an_actor_and_a_plausible_bot_id(changes: dict[str, object]) -> None:
    values: dict[str, object] = {"at": NOW, "actor": "operator", "bot_id": "bot-1", **changes}
    with pytest.raises(ValueError):
        Event(values["at"], EventKind.BOT_ADDED, values["actor"], values["bot_id"], Outcome.DONE)  # type: ignore[arg-type]


def test_the_retention_job_keeps_179_days_and_drops_181_by_the_clock_given() -> None:
    trail, clock = InMemoryEventTrail(), ManualClock(NOW)
    old, young = event(NOW - timedelta(days=181)), event(NOW - timedelta(days=179))
    trail.record(old)
    trail.record(young)
    purge = PurgeExpiredEvents(trail, clock, retention_days=180)
    assert purge() == 1
    assert trail.recent(EventFilter()) == [young]
    clock.advance(2 * 86400)  # now the young one is 181 days old
    assert purge() == 1 and trail.recent(EventFilter()) == []


def test_the_retention_is_at_least_a_day() -> None:
    with pytest.raises(ValueError):
        PurgeExpiredEvents(InMemoryEventTrail(), ManualClock(NOW), retention_days=0)


def test_recent_is_newest_first_filtered_and_limited() -> None:
    trail = InMemoryEventTrail()
    for minutes in range(5):
        trail.record(event(NOW + timedelta(minutes=minutes)))
    trail.record(event(NOW + timedelta(minutes=10), bot_id="bot-2"))
    newest = trail.recent(EventFilter(limit=3))
    assert [e.at for e in newest] == [NOW + timedelta(minutes=m) for m in (10, 4, 3)]
    assert {e.bot_id for e in trail.recent(EventFilter(bot_id="bot-1"))} == {"bot-1"}
    assert len(trail.recent(EventFilter(since=NOW + timedelta(minutes=3)))) == 3
