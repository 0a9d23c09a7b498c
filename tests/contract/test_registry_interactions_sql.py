"""SqlInteractionStats.record_many (RecordInteractions) on SQLite and PostgreSQL: one transaction of upserts,
entries merged per row, unknown bots skipped, concurrent batches on the same rows summed (no deadlock)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tgm.domain.administration.ports import Interaction
from tgm.domain.bots import Bot, BotSettings, BotStatus, hash_webhook_secret, new_bot_id, new_public_id
from tgm.services.botregistry.adapters.sql import SqlBotRepository, SqlInteractionStats, make_session_factory

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_bot(telegram_bot_id: int) -> Bot:
    return Bot(
        id=new_bot_id(),
        public_id=new_public_id(),
        owner_id=1001,
        telegram_bot_id=telegram_bot_id,
        username=f"bot_{telegram_bot_id}",
        status=BotStatus.ACTIVE,
        sealed_token=b"sealed",
        webhook_secret_sha256=hash_webhook_secret(f"secret-{telegram_bot_id}"),
        settings=BotSettings(),
        created_at=T0,
        updated_at=T0,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    engine: sa.Engine = request.getfixturevalue(f"{'pg' if request.param == 'postgres' else 'sqlite'}_engine")
    with engine.begin() as conn:
        for table in ("bot_daily_stats", "bot_users", "bots"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    return engine


@pytest.fixture
def world(engine: sa.Engine) -> tuple[SqlInteractionStats, Bot, Bot, sa.Engine]:
    sessions = make_session_factory(engine)
    bots = SqlBotRepository(sessions)
    first, second = make_bot(111), make_bot(222)
    bots.add(first)
    bots.add(second)
    return SqlInteractionStats(sessions), first, second, engine


def _utc(value: datetime | str) -> datetime:
    """SQLite hands back naive text, PostgreSQL an aware datetime."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def user_row(engine: sa.Engine, bot_id: str, user: int) -> tuple[str | None, datetime, datetime]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT language_code, first_seen, last_seen FROM bot_users WHERE bot_id = :b AND telegram_user_id = :u"
            ),
            {"b": bot_id, "u": user},
        ).one()
    return row[0], _utc(row[1]), _utc(row[2])


def test_a_batch_upserts_users_and_adds_daily_messages(world: tuple[SqlInteractionStats, Bot, Bot, sa.Engine]) -> None:
    stats, first, second, _engine = world
    stored, unknown = stats.record_many(
        [
            Interaction(first.id, 7, "de", T0, 3),
            Interaction(first.id, 8, None, T0, 1),
            Interaction(second.id, 7, "pt", T0, 2),
            Interaction("no-such-bot", 7, None, T0, 5),
        ]
    )
    assert (stored, unknown) == (3, 1)
    now = T0 + timedelta(minutes=1)
    assert stats.stats(first.id, now).__dict__ == {"users_total": 2, "users_today": 2, "messages_today": 4}
    assert stats.stats(second.id, now).messages_today == 2
    stats.record_many([Interaction(first.id, 7, None, T0 + timedelta(seconds=30), 2)])
    assert stats.stats(first.id, now).__dict__ == {"users_total": 2, "users_today": 2, "messages_today": 6}


def test_entries_for_one_row_merge_and_an_older_entry_does_not_move_time_or_language_back(
    world: tuple[SqlInteractionStats, Bot, Bot, sa.Engine],
) -> None:
    stats, first, _second, engine = world
    later = T0 + timedelta(minutes=5)
    # The same (bot, user) twice in one batch: one upsert may not touch a row twice (PostgreSQL refuses it).
    stats.record_many([Interaction(first.id, 7, "de", T0, 1), Interaction(first.id, 7, "fr", later, 1)])
    assert user_row(engine, first.id, 7) == ("fr", T0, later)
    # A put-back batch arriving late with an older time and another language.
    stats.record_many([Interaction(first.id, 7, "es", T0 - timedelta(minutes=1), 1)])
    assert user_row(engine, first.id, 7) == ("fr", T0, later)
    # A newer entry without a language keeps the stored one.
    newest = later + timedelta(minutes=1)
    stats.record_many([Interaction(first.id, 7, None, newest, 1)])
    assert user_row(engine, first.id, 7) == ("fr", T0, newest)
    assert stats.stats(first.id, newest).messages_today == 4


def test_messages_count_on_the_day_they_were_seen(world: tuple[SqlInteractionStats, Bot, Bot, sa.Engine]) -> None:
    stats, first, _second, _engine = world
    yesterday = T0 - timedelta(days=1)
    stats.record_many([Interaction(first.id, 7, None, yesterday, 4), Interaction(first.id, 8, None, T0, 1)])
    assert stats.stats(first.id, T0).messages_today == 1
    assert stats.stats(first.id, yesterday).messages_today == 4


def test_a_batch_of_only_unknown_bots_stores_nothing(world: tuple[SqlInteractionStats, Bot, Bot, sa.Engine]) -> None:
    stats, first, _second, _engine = world
    assert stats.record_many([Interaction("nope", 7, None, T0, 1)]) == (0, 1)
    assert stats.record_many([]) == (0, 0)
    assert stats.stats(first.id, T0).users_total == 0


def test_concurrent_batches_on_the_same_rows_add_up(world: tuple[SqlInteractionStats, Bot, Bot, sa.Engine]) -> None:
    stats, first, second, _engine = world
    errors: list[BaseException] = []

    def flush(worker: int) -> None:
        try:
            for round_ in range(10):
                batch = [
                    Interaction(bot.id, user, "en", T0 + timedelta(seconds=round_), 1)
                    for bot in ((first, second) if worker % 2 else (second, first))  # opposite orders on purpose
                    for user in range(1, 21)
                ]
                stats.record_many(batch)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=flush, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for bot in (first, second):
        got = stats.stats(bot.id, T0 + timedelta(minutes=1))
        assert (got.users_total, got.messages_today) == (20, 4 * 10 * 20)
