"""EventTrail contract: the same tests against InMemoryEventTrail and SqlEventTrail on SQLite and on a real
PostgreSQL 15 (schema from the Alembic migrations): order, filters, limits, details round trip, the retention job
on an injected clock (181 days goes, 179 stays) and the indexes on the time column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tgm.domain.clock import ManualClock
from tgm.domain.events import Event, EventFilter, EventKind, EventTrail, Outcome, PurgeExpiredEvents
from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.memory import InMemoryEventTrail
from tgm.services.botregistry.adapters.sql import SqlEventTrail, make_engine, make_session_factory

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


def event(
    at: datetime, bot_id: str | None = "bot-1", kind: EventKind = EventKind.BOT_DISABLED, **details: str
) -> Event:
    return Event(at, kind, "telegram:42", bot_id, Outcome.DONE, details)


def _clean(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events"))
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_engine(request: pytest.FixtureRequest) -> sa.Engine:
    return _clean(request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine"))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def trail(request: pytest.FixtureRequest) -> EventTrail:
    if request.param == "memory":
        return InMemoryEventTrail()
    engine = _clean(request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine"))
    return SqlEventTrail(make_session_factory(engine))


def test_recent_is_newest_first_and_round_trips_every_field(trail: EventTrail) -> None:
    trail.record(event(NOW, change="SetWelcome", via="dispatcher"))
    trail.record(Event(NOW + timedelta(seconds=1), EventKind.KEY_ROTATED, "operator", None, Outcome.DONE, {}))
    newest, older = trail.recent(EventFilter())
    assert newest == Event(NOW + timedelta(seconds=1), EventKind.KEY_ROTATED, "operator", None, Outcome.DONE, {})
    assert older == event(NOW, change="SetWelcome", via="dispatcher")
    assert older.at.tzinfo is not None and older.at == NOW


def test_filters_by_bot_time_and_kind_and_limits(trail: EventTrail) -> None:
    for minute in range(6):
        trail.record(event(NOW + timedelta(minutes=minute), bot_id="bot-1" if minute % 2 else "bot-2"))
    trail.record(event(NOW, kind=EventKind.CALLBACK_REFUSED, bot_id=None))
    assert {e.bot_id for e in trail.recent(EventFilter(bot_id="bot-1"))} == {"bot-1"}
    assert len(trail.recent(EventFilter(bot_id="bot-1"))) == 3
    assert [e.at for e in trail.recent(EventFilter(since=NOW + timedelta(minutes=4)))] == [
        NOW + timedelta(minutes=5),
        NOW + timedelta(minutes=4),
    ]
    assert [e.bot_id for e in trail.recent(EventFilter(kinds=frozenset({EventKind.CALLBACK_REFUSED})))] == [None]
    assert len(trail.recent(EventFilter(limit=2))) == 2
    assert len(trail.recent(EventFilter(limit=5000))) == 7  # capped, not refused


def test_the_retention_job_on_an_injected_clock_drops_181_days_and_keeps_179(trail: EventTrail) -> None:
    clock = ManualClock(NOW)
    trail.record(event(NOW - timedelta(days=181), bot_id="old"))
    trail.record(event(NOW - timedelta(days=179), bot_id="young"))
    trail.record(event(NOW - timedelta(days=180, seconds=-1), bot_id="edge"))  # one second short of 180 days
    purge = PurgeExpiredEvents(trail, clock, retention_days=180)
    assert purge() == 1
    assert sorted(e.bot_id or "" for e in trail.recent(EventFilter())) == ["edge", "young"]
    assert purge() == 0
    clock.advance(2 * 86400)
    assert purge() == 2 and trail.recent(EventFilter()) == []


def test_the_time_column_and_bot_with_time_are_indexed(sql_engine: sa.Engine) -> None:
    indexes = {index["name"]: index["column_names"] for index in sa.inspect(sql_engine).get_indexes("events")}
    assert indexes["ix_events_at"] == ["at"]
    assert indexes["ix_events_bot_id_at"] == ["bot_id", "at"]


def test_postgres_plans_a_time_range_on_the_index(pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table: ask whether the index can serve
        plan = "\n".join(
            row[0] for row in conn.execute(sa.text("EXPLAIN DELETE FROM events WHERE at < now() - interval '180 days'"))
        )
    assert "ix_events_at" in plan


def test_migrating_below_0008_drops_the_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/down.db"
    migrate.upgrade(url)
    migrate.downgrade(url, "0007")
    engine = make_engine(url)
    try:
        assert "events" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    migrate.upgrade(url)
