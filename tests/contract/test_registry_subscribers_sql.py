"""Subscribers (issue 15) in memory, on SQLite and on PostgreSQL, through BotAdministration: counts by status and
new ones per UTC day (injected clock), a user who blocked the bot (Telegram's 403) until they come back, admin
blocks in force, tenant isolation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import FakeTelegram
from tgm.domain.administration.bot_administration import BotAdministration
from tgm.domain.administration.ports import BlockedByUser, BlockUser, Interaction, SubscriberStats, SubscriberStatus
from tgm.domain.administration.register_bot import RegisterBot
from tgm.domain.administration.setting_rules import InvalidSetting
from tgm.domain.bots import Bot, BotSettings, BotStatus, hash_webhook_secret, new_bot_id, new_public_id
from tgm.domain.clock import ManualClock
from tgm.domain.errors import BotNotFound
from tgm.services.botregistry.adapters.memory import InMemoryBotRepository, InMemoryInteractionStats
from tgm.services.botregistry.adapters.sql import SqlBotRepository, SqlInteractionStats, make_session_factory

ALICE, MALLORY = 1001, 2002
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def make_bot(telegram_bot_id: int, owner: int = ALICE) -> Bot:
    return Bot(
        id=new_bot_id(),
        public_id=new_public_id(),
        owner_id=owner,
        telegram_bot_id=telegram_bot_id,
        username=f"bot_{telegram_bot_id}",
        status=BotStatus.ACTIVE,
        sealed_token=b"sealed",
        webhook_secret_sha256=hash_webhook_secret(f"secret-{telegram_bot_id}"),
        settings=BotSettings(),
        created_at=NOW,
        updated_at=NOW,
    )


@dataclass
class World:
    admin: BotAdministration
    stats: Any  # SqlInteractionStats or InMemoryInteractionStats
    clock: ManualClock
    bot: Bot
    other: Bot  # Mallory's

    def seen(self, user: int, at: datetime) -> None:
        self.stats.record_many([Interaction(self.bot.id, user, None, at, 1)])

    def counts(self, actor: int = ALICE) -> SubscriberStats:
        bot, stats = self.admin.subscriber_stats(actor, self.bot.id)
        assert bot.id == self.bot.id
        return stats


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest) -> World:
    stats: Any
    if request.param == "memory":
        bots: Any = InMemoryBotRepository()
        stats = InMemoryInteractionStats()
        stats.record_many = lambda items: [  # the memory adapter has the per-update path only
            stats.record(item.bot_id, item.telegram_user_id, item.language_code, item.seen_at) for item in items
        ]
    else:
        engine: sa.Engine = request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")
        with engine.begin() as conn:
            for table in ("bot_daily_stats", "bot_users", "bots"):
                conn.execute(sa.text(f"DELETE FROM {table}"))
        sessions = make_session_factory(engine)
        bots, stats = SqlBotRepository(sessions), SqlInteractionStats(sessions)
    clock = ManualClock(NOW)
    telegram, vault = FakeTelegram(), InMemoryTokenVault()
    admin = BotAdministration(
        bots=bots,
        manager=bots,
        telegram=telegram,
        vault=vault,
        clock=clock,
        register_bot=RegisterBot(bots, telegram, vault, clock, "https://hooks.test"),
        stats=stats,
    )
    mine, other = make_bot(111), make_bot(222, owner=MALLORY)
    bots.add(mine)
    bots.add(other)
    return World(admin, stats, clock, mine, other)


def test_counts_by_status_and_new_subscribers_per_utc_day(world: World) -> None:
    world.seen(1, NOW - timedelta(days=30))
    world.seen(2, NOW - timedelta(days=6, hours=15))  # 00:00 six days ago: still within the 7 UTC days
    world.seen(3, NOW - timedelta(days=6, hours=15, seconds=1))  # a second earlier: not
    world.seen(4, NOW.replace(hour=0, minute=0))  # today
    world.seen(5, NOW - timedelta(hours=15, seconds=1))  # yesterday 23:59:59
    world.seen(1, NOW)  # seen again today: still not new
    assert world.counts() == SubscriberStats(
        total=5, active=5, blocked_bot=0, blocked_by_admin=0, new_today=1, new_7_days=3
    )
    world.clock.advance(86400)  # "today" follows the injected clock
    assert (world.counts().new_today, world.counts().new_7_days) == (0, 2)


def test_a_user_who_blocked_the_bot_counts_as_such_until_they_come_back(world: World) -> None:
    world.seen(1, NOW - timedelta(hours=1))
    world.seen(2, NOW - timedelta(hours=1))
    marked = world.admin.mark_blocked(
        [
            BlockedByUser(world.bot.id, 1, NOW - timedelta(minutes=30)),
            BlockedByUser(world.bot.id, 2, NOW - timedelta(hours=2)),  # before their last message: came back since
            BlockedByUser(world.bot.id, 77, NOW),  # never started the bot
            BlockedByUser(world.other.id, 1, NOW),  # not a subscriber of that bot
        ]
    )
    assert marked == 1
    assert (world.counts().active, world.counts().blocked_bot) == (1, 1)
    world.seen(1, NOW - timedelta(minutes=40))  # a late batch from before the failed send: still blocked
    assert world.counts().blocked_bot == 1
    world.clock.advance(300)
    world.admin.record_interaction(world.bot.id, 1, None)  # they unblocked the bot and wrote again
    assert (world.counts().active, world.counts().blocked_bot) == (2, 0)
    world.admin.mark_blocked([BlockedByUser(world.bot.id, 2, NOW + timedelta(days=365))])  # future: counts as now
    world.seen(2, NOW + timedelta(minutes=10))
    assert world.counts().blocked_bot == 0


def test_blocked_by_the_admin_comes_first_and_only_while_in_force(world: World) -> None:
    for user in (1, 2, 3):
        world.seen(user, NOW - timedelta(hours=1))
    world.admin.mark_blocked([BlockedByUser(world.bot.id, 2, NOW)])
    world.admin.update_settings(ALICE, world.bot.id, BlockUser(2, 3600))
    world.admin.update_settings(ALICE, world.bot.id, BlockUser(3, 60))
    world.admin.update_settings(ALICE, world.bot.id, BlockUser(555, 3600))  # blocked but never a subscriber
    assert world.counts() == SubscriberStats(
        total=3, active=1, blocked_bot=0, blocked_by_admin=2, new_today=3, new_7_days=3
    )
    world.clock.advance(120)  # user 3's block is over
    counts = world.counts()
    assert (counts.active, counts.blocked_bot, counts.blocked_by_admin) == (2, 0, 1)
    world.clock.advance(3600)  # user 2's too: they still blocked the bot
    counts = world.counts()
    assert (counts.active, counts.blocked_bot, counts.blocked_by_admin) == (2, 1, 0)


def test_another_admins_bot_is_not_found_and_its_subscribers_stay_apart(world: World) -> None:
    world.seen(1, NOW)
    world.stats.record_many([Interaction(world.other.id, 9, None, NOW, 1)])
    for actor, bot_id in ((MALLORY, world.bot.id), (ALICE, world.other.id), (ALICE, "no-such-bot"), (0, world.bot.id)):
        with pytest.raises(BotNotFound):
            world.admin.subscriber_stats(actor, bot_id)
    assert world.counts().total == 1


def test_the_list_pages_by_user_id_with_each_status(world: World) -> None:
    for user in (30, 10, 20, 40, 50):
        world.seen(user, NOW - timedelta(days=user))
    world.seen(10, NOW)
    world.admin.mark_blocked([BlockedByUser(world.bot.id, 20, NOW), BlockedByUser(world.bot.id, 30, NOW)])
    world.admin.update_settings(ALICE, world.bot.id, BlockUser(30, 3600))
    first = world.admin.list_subscribers(ALICE, world.bot.id, 0, 2)
    second = world.admin.list_subscribers(ALICE, world.bot.id, first[-1].telegram_user_id, 2)
    last = world.admin.list_subscribers(ALICE, world.bot.id, second[-1].telegram_user_id, 2)
    assert [(s.telegram_user_id, s.status) for s in first + second + last] == [
        (10, SubscriberStatus.ACTIVE),
        (20, SubscriberStatus.BLOCKED_BOT),
        (30, SubscriberStatus.BLOCKED_BY_ADMIN),
        (40, SubscriberStatus.ACTIVE),
        (50, SubscriberStatus.ACTIVE),
    ]
    assert (first[0].first_seen, first[0].last_seen) == (NOW - timedelta(days=10), NOW)
    assert world.admin.list_subscribers(ALICE, world.bot.id, 50, 2) == []


def test_the_list_is_the_owners_only_and_pages_are_bounded(world: World) -> None:
    world.seen(1, NOW)
    for actor, bot_id in ((MALLORY, world.bot.id), (ALICE, world.other.id)):
        with pytest.raises(BotNotFound):
            world.admin.list_subscribers(actor, bot_id, 0, 10)
    for limit in (0, -1, 1001):
        with pytest.raises(InvalidSetting):
            world.admin.list_subscribers(ALICE, world.bot.id, 0, limit)
