"""BotRepository contract: the same tests against InMemoryBotRepository and SqlBotRepository on
SQLite (temp file) and on a real PostgreSQL 15, with the schema created by the Alembic migrations."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from tgm.domain.bots import Bot, BotSettings, BotStatus, RateRule, hash_webhook_secret, new_bot_id, new_public_id
from tgm.domain.errors import BotNotFound
from tgm.domain.ports import BotRepository
from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.memory import InMemoryBotRepository
from tgm.services.botregistry.adapters.sql import Base, SqlBotRepository, make_engine, make_session_factory
from tgm.services.botregistry.errors import DuplicateBot

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_bot(owner_id: int = 1001, telegram_bot_id: int = 123456789, created_at: datetime = T0, **changes) -> Bot:  # type: ignore[no-untyped-def]
    bot = Bot(
        id=new_bot_id(),
        public_id=new_public_id(),
        owner_id=owner_id,
        telegram_bot_id=telegram_bot_id,
        username=f"bot_{telegram_bot_id}",
        status=BotStatus.ACTIVE,
        sealed_token=b"\x00sealed\xff" + telegram_bot_id.to_bytes(8, "big"),
        webhook_secret_sha256=hash_webhook_secret(f"secret-{telegram_bot_id}"),
        settings=BotSettings(welcome_text="Olá 👋", language="pt-BR"),
        created_at=created_at,
        updated_at=created_at,
    )
    return dataclasses.replace(bot, **changes)


# ------------------------------------------------------------------------------------------ fixtures


def _clean(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM bot_users"))
        conn.execute(sa.text("DELETE FROM bots"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_engine(request: pytest.FixtureRequest) -> sa.Engine:
    engine: sa.Engine = request.getfixturevalue(f"{request.param}_engine" if request.param == "sqlite" else "pg_engine")
    _clean(engine)
    return engine


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def repo(request: pytest.FixtureRequest) -> BotRepository:
    if request.param == "memory":
        return InMemoryBotRepository()
    engine: sa.Engine = request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")
    _clean(engine)
    return SqlBotRepository(make_session_factory(engine))


# ------------------------------------------------------------------------------------------ contract


def test_add_then_read_back_by_every_key(repo: BotRepository) -> None:
    bot = make_bot(is_manager=True)
    repo.add(bot)

    for found in (repo.get(bot.id), repo.by_public_id(bot.public_id), repo.by_telegram_bot_id(bot.telegram_bot_id)):
        assert found == bot
        assert found is not bot
        assert found is not None and found.created_at.tzinfo is not None
        assert found.created_at.utcoffset() == timedelta(0)
    assert repo.get("missing") is None
    assert repo.by_public_id("missing") is None
    assert repo.by_telegram_bot_id(1) is None


def test_versions_follow_every_write_and_leave_unknown_ids_out(repo: BotRepository) -> None:
    first, second = make_bot(telegram_bot_id=1), make_bot(telegram_bot_id=2)
    repo.add(first)
    repo.add(second)
    assert repo.versions([first.id, second.id, "missing"]) == {first.id: first.version, second.id: second.version}

    first.settings = BotSettings(welcome_text="changed", language="en")
    repo.save(first)

    versions = repo.versions([first.id, second.id])
    assert versions[first.id] == first.version == second.version + 1  # the write bumped only its own bot
    assert versions == {bot_id: stored.version for bot_id in versions if (stored := repo.get(bot_id)) is not None}
    assert repo.versions([]) == {}


def test_list_by_owner_returns_only_theirs_oldest_first(repo: BotRepository) -> None:
    newer = make_bot(owner_id=7, telegram_bot_id=2, created_at=T0 + timedelta(hours=1))
    older = make_bot(owner_id=7, telegram_bot_id=1, created_at=T0)
    other = make_bot(owner_id=8, telegram_bot_id=3)
    for bot in (newer, older, other):
        repo.add(bot)

    assert repo.list_by_owner(7) == [older, newer]
    assert repo.list_by_owner(8) == [other]
    assert repo.list_by_owner(9) == []


def test_save_persists_changes(repo: BotRepository) -> None:
    bot = make_bot()
    repo.add(bot)
    later = T0 + timedelta(minutes=3)
    bot.disable(later)
    bot.username = "renamed_bot"
    bot.sealed_token = b"new-ciphertext"
    bot.webhook_secret_sha256 = hash_webhook_secret("rotated")
    bot.settings = BotSettings(
        welcome_text="Hi",
        language="en",
        blocked_users={42: 1_900_000_000},
        rate_limits={"cmd:/start": RateRule(5, 60.0), "default": RateRule(100, 3600.0)},
        cooldowns={"cb:buy": 2.5},
    )

    repo.save(bot)

    stored = repo.get(bot.id)
    assert stored == bot
    assert stored is not None and stored.status is BotStatus.DISABLED and stored.updated_at == later


def test_changes_without_save_are_not_stored(repo: BotRepository) -> None:
    bot = make_bot()
    repo.add(bot)
    fetched = repo.get(bot.id)
    assert fetched is not None
    fetched.username = "changed"
    assert repo.get(bot.id) == bot


def test_save_of_unknown_bot_is_refused(repo: BotRepository) -> None:
    with pytest.raises(BotNotFound):
        repo.save(make_bot())


def test_telegram_bot_id_is_unique(repo: BotRepository) -> None:
    first = make_bot(owner_id=1)
    repo.add(first)
    with pytest.raises(DuplicateBot):
        repo.add(make_bot(owner_id=2, telegram_bot_id=first.telegram_bot_id))
    assert repo.list_by_owner(2) == []
    assert repo.by_telegram_bot_id(first.telegram_bot_id) == first


def test_public_id_is_unique(repo: BotRepository) -> None:
    first = make_bot(telegram_bot_id=1)
    repo.add(first)
    with pytest.raises(DuplicateBot):
        repo.add(make_bot(telegram_bot_id=2, public_id=first.public_id))
    second = make_bot(telegram_bot_id=3)
    repo.add(second)
    second.public_id = first.public_id
    with pytest.raises(DuplicateBot):
        repo.save(second)


def test_large_telegram_ids_fit(repo: BotRepository) -> None:
    bot = make_bot(owner_id=2**40 + 1, telegram_bot_id=2**40 + 7)  # beyond 32 bits: BIGINT needed
    repo.add(bot)
    assert repo.by_telegram_bot_id(2**40 + 7) == bot


# ------------------------------------------------------------------------------------------ SQL-only


_RAW_IDS = itertools.count(900_000_001)


def _insert_raw(engine: sa.Engine, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO bots (id, public_id, owner_id, telegram_bot_id, username, status, sealed_token,"
                " webhook_secret_sha256, welcome_text, language, is_manager, created_at, updated_at)"
                " VALUES (:id, :pid, 1, :tid, 'x', :status, :tok, :sha, '', 'en', false, :now, :now)"
            ),
            {
                "id": new_bot_id(),
                "pid": new_public_id(),
                "tid": next(_RAW_IDS),
                "status": status,
                "tok": b"t",
                "sha": b"\0" * 32,
                "now": T0,
            },
        )


def test_status_check_constraint_is_enforced(sql_engine: sa.Engine) -> None:
    _insert_raw(sql_engine, "active")  # the same statement with a legal status works
    with pytest.raises(IntegrityError):
        _insert_raw(sql_engine, "hacked")


def test_there_is_no_plaintext_token_column(sql_engine: sa.Engine) -> None:
    columns = {c["name"] for c in sa.inspect(sql_engine).get_columns("bots")}
    assert "sealed_token" in columns
    assert not {c for c in columns if "token" in c} - {"sealed_token"}


def test_bot_users_belong_to_a_bot(sql_engine: sa.Engine) -> None:
    bot = make_bot()
    SqlBotRepository(make_session_factory(sql_engine)).add(bot)
    insert = sa.text(
        "INSERT INTO bot_users (bot_id, telegram_user_id, language_code, first_seen, last_seen)"
        " VALUES (:bot, :user, 'en', :now, :now)"
    )
    with sql_engine.begin() as conn:
        conn.execute(insert, {"bot": bot.id, "user": 5, "now": T0})
    with pytest.raises(IntegrityError), sql_engine.begin() as conn:  # unique (bot_id, telegram_user_id)
        conn.execute(insert, {"bot": bot.id, "user": 5, "now": T0})
    with pytest.raises(IntegrityError), sql_engine.begin() as conn:  # foreign key (on in SQLite too)
        conn.execute(insert, {"bot": "no-such-bot", "user": 6, "now": T0})


def test_migrations_match_the_models(sql_engine: sa.Engine) -> None:
    with sql_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_migrations_are_reversible(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/r.db"
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    engine = make_engine(url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    migrate.upgrade(url)


def test_migrating_down_and_up_on_sqlite_keeps_every_bots_users_and_stats(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A batch migration rebuilds `bots` (copy, DROP, rename): with foreign keys enforced, the DROP cascaded.
    url = f"sqlite:///{tmp_path}/r.db"
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        bot = make_bot()
        SqlBotRepository(make_session_factory(engine)).add(bot)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO bot_users (bot_id, telegram_user_id, language_code, first_seen, last_seen)"
                    " VALUES (:b, 7, 'en', :t, :t)"
                ),
                {"b": bot.id, "t": T0.isoformat()},
            )
            conn.execute(sa.text("INSERT INTO bot_daily_stats VALUES (:b, '2026-01-01', 3)"), {"b": bot.id})
    finally:
        engine.dispose()

    migrate.downgrade(url, "0002")
    migrate.upgrade(url)

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM bot_users")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT messages FROM bot_daily_stats")).scalar_one() == 3
        assert SqlBotRepository(make_session_factory(engine)).get(bot.id) is not None
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_role_is_not_a_superuser(postgres_url: str, pg_engine: sa.Engine) -> None:
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar() is False
    with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
