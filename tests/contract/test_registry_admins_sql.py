"""BotAdminStore contract (issue 15, co-admins): the same tests against InMemoryBotAdminStore and SqlBotAdminStore on
SQLite and on a real PostgreSQL 15 (schema from migration 0010): lookups by code hash, pending invites, one winner
per invite, one membership per (bot, user), and both tables going with their bot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tests.contract.test_registry_sql import make_bot
from tgm.domain.bot_roles import BotAdminStore, CoAdmin, Invite, invite_code_hash
from tgm.domain.bots import Bot
from tgm.services.botregistry.adapters.memory import InMemoryBotAdminStore, InMemoryBotRepository
from tgm.services.botregistry.adapters.sql import SqlBotRepository, make_session_factory
from tgm.services.botregistry.adapters.sql_admins import SqlBotAdminStore

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
OWNER, HELPER, OTHER = 11, 22, 33


def new_bot(telegram_bot_id: int) -> Bot:
    return make_bot(owner_id=OWNER, telegram_bot_id=telegram_bot_id)


def invite(bot_id: str, code: str, at: datetime = NOW, hours: int = 24) -> Invite:
    return Invite(
        id=str(uuid.uuid4()),
        bot_id=bot_id,
        code_sha256=invite_code_hash(code),
        created_by=OWNER,
        created_at=at,
        expires_at=at + timedelta(hours=hours),
    )


def admin(bot_id: str, user: int, at: datetime = NOW) -> CoAdmin:
    return CoAdmin(str(uuid.uuid4()), bot_id, user, OWNER, at)


class Rig:
    def __init__(self, store: BotAdminStore, bots: object, engine: sa.Engine | None) -> None:
        self.store, self.bots, self.engine = store, bots, engine
        self.bot, self.other = new_bot(1_000_001), new_bot(1_000_002)
        for bot in (self.bot, self.other):
            bots.add(bot)  # type: ignore[attr-defined]


def _clean(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        for table in ("bot_invites", "bot_admins", "bot_users", "bot_daily_stats", "bots"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    return engine


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def rig(request: pytest.FixtureRequest) -> Rig:
    if request.param == "memory":
        return Rig(InMemoryBotAdminStore(), InMemoryBotRepository(), None)
    engine = _clean(request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine"))
    sessions = make_session_factory(engine)
    return Rig(SqlBotAdminStore(sessions), SqlBotRepository(sessions), engine)


def test_an_invite_is_found_by_its_code_hash_only_and_round_trips(rig: Rig) -> None:
    stored = invite(rig.bot.id, "code-one-abcdefghijklmnopqrstuv")
    rig.store.add_invite(stored)
    assert rig.store.invite_by_hash(invite_code_hash("code-one-abcdefghijklmnopqrstuv")) == stored
    assert rig.store.invite(stored.id) == stored
    assert rig.store.invite_by_hash(invite_code_hash("code-two-abcdefghijklmnopqrstuv")) is None
    assert rig.store.invite(str(uuid.uuid4())) is None


def test_pending_leaves_out_used_revoked_and_expired_invites_and_other_bots(rig: Rig) -> None:
    used, revoked, expired, open_, elsewhere = (
        invite(rig.bot.id, "used-abcdefghijklmnopqrstuvwxyz"),
        invite(rig.bot.id, "revoked-abcdefghijklmnopqrstuvw"),
        invite(rig.bot.id, "expired-abcdefghijklmnopqrstuvw", at=NOW - timedelta(hours=25)),
        invite(rig.bot.id, "open-abcdefghijklmnopqrstuvwxyz"),
        invite(rig.other.id, "else-abcdefghijklmnopqrstuvwxyz"),
    )
    for item in (used, revoked, expired, open_, elsewhere):
        rig.store.add_invite(item)
    assert rig.store.redeem(used.id, admin(rig.bot.id, HELPER))
    assert rig.store.revoke_invite(revoked.id, NOW)
    assert not rig.store.revoke_invite(revoked.id, NOW)  # once
    assert not rig.store.revoke_invite(used.id, NOW)  # a used invite stays used
    assert [i.id for i in rig.store.pending_invites(rig.bot.id, NOW)] == [open_.id]
    assert rig.store.pending_invites(rig.bot.id, open_.expires_at) == []  # expiry is exclusive
    spent = rig.store.invite(used.id)
    assert spent is not None and spent.used_by == HELPER and spent.used_at == NOW


def test_one_redeem_wins_and_adds_one_admin(rig: Rig) -> None:
    stored = invite(rig.bot.id, "race-abcdefghijklmnopqrstuvwxyz")
    rig.store.add_invite(stored)
    first = admin(rig.bot.id, HELPER)
    assert rig.store.redeem(stored.id, first)
    assert not rig.store.redeem(stored.id, admin(rig.bot.id, OTHER))
    assert rig.store.admin_ids(rig.bot.id) == {HELPER}
    assert rig.store.admins(rig.bot.id) == [first]
    assert rig.store.membership(first.id) == first
    assert rig.store.bots_administered_by(HELPER) == [rig.bot.id]
    assert rig.store.bots_administered_by(OTHER) == []


def test_an_admin_is_one_membership_per_bot_and_a_failed_redeem_leaves_the_invite_open(rig: Rig) -> None:
    one, two = (
        invite(rig.bot.id, "one-abcdefghijklmnopqrstuvwxyzA"),
        invite(rig.bot.id, "two-abcdefghijklmnopqrstuvwxyzA"),
    )
    rig.store.add_invite(one)
    rig.store.add_invite(two)
    assert rig.store.redeem(one.id, admin(rig.bot.id, HELPER))
    assert not rig.store.redeem(two.id, admin(rig.bot.id, HELPER))
    assert [i.id for i in rig.store.pending_invites(rig.bot.id, NOW)] == [two.id]
    assert not rig.store.redeem(two.id, admin(rig.other.id, OTHER))  # an invite binds its own bot
    assert rig.store.admin_ids(rig.other.id) == frozenset()


def test_clear_drops_one_bots_admins_and_invites_only(rig: Rig) -> None:
    for bot, user, code in (
        (rig.bot, HELPER, "c1-abcdefghijklmnopqrstuvwxyzAB"),
        (rig.other, OTHER, "c2-abcdefghijklmnopqrstuvwxyzAB"),
    ):
        stored = invite(bot.id, code)
        rig.store.add_invite(stored)
        rig.store.redeem(stored.id, admin(bot.id, user))
        rig.store.add_invite(invite(bot.id, "open-" + code))
    rig.store.clear(rig.bot.id)
    assert rig.store.admin_ids(rig.bot.id) == frozenset() and rig.store.pending_invites(rig.bot.id, NOW) == []
    assert rig.store.invite_by_hash(invite_code_hash("c1-abcdefghijklmnopqrstuvwxyzAB")) is None
    assert rig.store.admin_ids(rig.other.id) == {OTHER} and len(rig.store.pending_invites(rig.other.id, NOW)) == 1


def test_remove_admin_takes_effect_once(rig: Rig) -> None:
    stored = invite(rig.bot.id, "rm-abcdefghijklmnopqrstuvwxyzAB")
    rig.store.add_invite(stored)
    member = admin(rig.bot.id, HELPER)
    rig.store.redeem(stored.id, member)
    assert rig.store.remove_admin(rig.bot.id, HELPER)
    assert not rig.store.remove_admin(rig.bot.id, HELPER)
    assert rig.store.admin_ids(rig.bot.id) == frozenset() and rig.store.membership(member.id) is None


@pytest.mark.parametrize("engine_name", ["sqlite_engine", pytest.param("pg_engine", marks=pytest.mark.postgres)])
def test_the_tables_refuse_duplicates_and_go_with_their_bot(engine_name: str, request: pytest.FixtureRequest) -> None:
    engine = _clean(request.getfixturevalue(engine_name))
    sessions = make_session_factory(engine)
    bots, store = SqlBotRepository(sessions), SqlBotAdminStore(sessions)
    bot = new_bot(1_000_003)
    bots.add(bot)
    stored = invite(bot.id, "dup-abcdefghijklmnopqrstuvwxyzAB")
    store.add_invite(stored)
    store.redeem(stored.id, admin(bot.id, HELPER))
    with pytest.raises(IntegrityError):  # the same code twice
        store.add_invite(invite(bot.id, "dup-abcdefghijklmnopqrstuvwxyzAB"))
    with pytest.raises(IntegrityError):  # the same (bot, user) twice
        _execute(
            engine,
            "INSERT INTO bot_admins (id, bot_id, telegram_user_id, added_by, added_at) VALUES (:id, :bot, 22, 11, :at)",
            {"id": str(uuid.uuid4()), "bot": bot.id, "at": NOW},
        )
    replacement = new_bot(1_000_004)
    current = bots.get(bot.id)
    assert current is not None
    bots.replace(current, replacement)  # the row goes: its admins and invites with it (ON DELETE CASCADE)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM bot_admins")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM bot_invites")).scalar() == 0


def _execute(engine: sa.Engine, sql: str, values: dict[str, object]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), values)
