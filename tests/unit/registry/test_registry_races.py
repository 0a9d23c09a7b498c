"""Races and partial failures: claim first, compare-and-set writes, compensation after Telegram was told."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN, FakeTelegram
from tgm.domain.administration.bot_administration import BotAdministration
from tgm.domain.administration.ports import SetWelcome
from tgm.domain.administration.register_bot import (
    CLAIM_TIMEOUT,
    RegisterBot,
    RegisterBotCommand,
    RegistrationInProgress,
)
from tgm.domain.bots import BotStatus, BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.errors import BotNotFound, BotOwnedByAnotherAdmin, ConcurrentUpdate, IllegalTransition
from tgm.domain.ports import BotRepository, WebhookRegistration
from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.memory import InMemoryBotRepository, InMemoryInteractionStats
from tgm.services.botregistry.adapters.sql import (
    SqlBotRepository,
    SqlInteractionStats,
    make_engine,
    make_session_factory,
)

ALICE, BOB = 1001, 2002
MANAGER_TOKEN = "555555555:AAManagerFakeTokenForTests_abcdefghij"
NEW_MANAGER_TOKEN = "666666666:AANewManagerFakeTokenForTests_abcdefg"
MANAGED_TOKEN = "444444444:AAManagedFakeTokenForTests_abcdefghi"


class RacyTelegram(FakeTelegram):
    """FakeTelegram plus deleteWebhook, getManagedBotToken and a hook that runs inside setWebhook."""

    def __init__(self) -> None:
        super().__init__()
        self.known.update({555555555: "mgr_bot", 666666666: "mgr2_bot", 444444444: "made_bot"})
        self.deleted: list[int] = []
        self.during_set_webhook: Callable[[], None] | None = None

    def set_webhook(self, token: BotToken, registration: WebhookRegistration) -> None:
        super().set_webhook(token, registration)
        hook, self.during_set_webhook = self.during_set_webhook, None
        if hook is not None:
            hook()

    def delete_webhook(self, token: BotToken, drop_pending_updates: bool = False) -> None:
        self.deleted.append(token.telegram_bot_id)

    def get_managed_bot_token(self, manager_token: BotToken, user_id: int) -> BotToken:
        return BotToken(MANAGED_TOKEN)


class World:
    def __init__(self, bots: BotRepository, stats: Any) -> None:
        self.bots = bots
        self.stats = stats
        self.telegram = RacyTelegram()
        self.vault = InMemoryTokenVault()
        self.clock = ManualClock()
        self.register = RegisterBot(bots, self.telegram, self.vault, self.clock, "https://hooks.test")
        self.admin = BotAdministration(
            bots=bots,
            manager=bots,  # type: ignore[arg-type]
            telegram=self.telegram,
            vault=self.vault,
            clock=self.clock,
            register_bot=self.register,
            stats=stats,
        )

    def add(self, owner: int = ALICE, token: str = TOKEN, **kwargs: Any) -> Any:
        return self.register.register(RegisterBotCommand(owner_id=owner, token=BotToken(token), **kwargs))


@pytest.fixture(params=["memory", "sqlite"])
def w(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "memory":
        bots = InMemoryBotRepository()
        stats = InMemoryInteractionStats()
        bots.on_drop = stats.drop
        yield World(bots, stats)
        return
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    yield World(SqlBotRepository(sessions), SqlInteractionStats(sessions))
    engine.dispose()


def test_a_stale_save_is_refused_and_never_resurrects_a_deleted_bot(w: World) -> None:
    bot, _ = w.add()
    stale = w.bots.get(bot.id)
    assert stale is not None
    w.admin.delete(ALICE, bot.id)
    stale.username = "resurrected"
    with pytest.raises(ConcurrentUpdate):
        w.bots.save(stale)  # status ACTIVE in the stale copy
    stored = w.bots.get(bot.id)
    assert stored is not None and stored.status is BotStatus.DELETED and stored.sealed_token == b""


def test_the_claim_decides_who_registers_a_new_bot(w: World) -> None:
    # While Alice's registration talks to Telegram, Bob and Alice herself try the same bot.
    outcomes: list[type[Exception]] = []

    def racer() -> None:
        for owner in (BOB, ALICE):
            try:
                w.add(owner)
            except Exception as error:
                outcomes.append(type(error))

    w.telegram.during_set_webhook = racer
    bot, refreshed = w.add(ALICE)
    assert outcomes == [BotOwnedByAnotherAdmin, RegistrationInProgress]
    assert bot.status is BotStatus.ACTIVE and not refreshed
    assert len(w.telegram.webhooks) == 1  # the losers never reached Telegram


def test_a_database_failure_after_set_webhook_takes_the_webhook_back_and_frees_the_bot(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = w.bots.save
    calls = {"n": 0}

    def failing_save(bot: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        real_save(bot)

    monkeypatch.setattr(w.bots, "save", failing_save)
    with pytest.raises(RuntimeError):
        w.add()
    assert w.telegram.deleted == [123456789]  # compensated
    failed = w.bots.by_telegram_bot_id(123456789)
    assert failed is not None and failed.status is BotStatus.FAILED and failed.sealed_token == b""
    monkeypatch.setattr(w.bots, "save", real_save)
    bot, refreshed = w.add()  # the retry works
    assert bot.status is BotStatus.ACTIVE and not refreshed and bot.id != failed.id


def test_a_crashed_claim_is_free_after_the_claim_timeout(w: World) -> None:
    bot, _ = w.add()
    pending = w.bots.get(bot.id)
    assert pending is not None
    pending.status = BotStatus.PENDING
    w.bots.save(pending)
    with pytest.raises(BotOwnedByAnotherAdmin):
        w.add(BOB)
    w.clock.advance(CLAIM_TIMEOUT.total_seconds() + 1)
    taken, _ = w.add(BOB)
    assert taken.owner_id == BOB and taken.status is BotStatus.ACTIVE


def test_rotate_that_loses_to_a_delete_takes_its_webhook_back(w: World) -> None:
    bot, _ = w.add()
    w.telegram.during_set_webhook = lambda: w.admin.delete(ALICE, bot.id)
    with pytest.raises(IllegalTransition):
        w.admin.rotate_secret(ALICE, bot.id)
    stored = w.bots.get(bot.id)
    assert stored is not None and stored.status is BotStatus.DELETED
    # deleteWebhook: once by the delete, once more to undo the rotate's setWebhook.
    assert w.telegram.deleted == [123456789, 123456789]


def test_a_re_add_that_loses_to_a_delete_takes_its_webhook_back(w: World) -> None:
    bot, _ = w.add()
    w.telegram.during_set_webhook = lambda: w.admin.delete(ALICE, bot.id)
    again, refreshed = w.add()  # the refresh lost; the retry finds the bot free and registers it anew
    assert not refreshed and again.id != bot.id and again.status is BotStatus.ACTIVE
    old = w.bots.get(bot.id)
    assert old is None  # replaced by the new registration


def test_concurrent_settings_changes_are_both_kept(w: World) -> None:
    bot, _ = w.add()
    w.admin.update_settings(ALICE, bot.id, SetWelcome("one"))
    stale = w.bots.get(bot.id)
    assert stale is not None
    w.admin.update_settings(ALICE, bot.id, SetWelcome("two"))
    with pytest.raises(ConcurrentUpdate):
        w.bots.save(replace(stale, username="stale"))
    stored = w.bots.get(bot.id)
    assert stored is not None and stored.settings.welcome_text == "two" and stored.username == "first_bot"


def test_a_deleted_bot_is_free_for_anyone_with_nothing_of_the_past(w: World) -> None:
    bot, _ = w.add()
    w.admin.update_settings(ALICE, bot.id, SetWelcome("Alice's welcome"))
    w.admin.record_interaction(bot.id, 77, "en")
    w.admin.delete(ALICE, bot.id)
    taken, refreshed = w.add(BOB)
    assert not refreshed
    assert taken.owner_id == BOB and taken.id != bot.id and taken.public_id != bot.public_id
    assert taken.settings.welcome_text == ""
    assert w.admin.details(BOB, taken.id)[1].users_total == 0
    with pytest.raises(BotNotFound):
        w.admin.details(ALICE, bot.id)
    assert [b.id for b in w.admin.list_bots(ALICE)] == []


def test_a_new_manager_token_leaves_exactly_one_manager(w: World) -> None:
    first, _ = w.add(0, MANAGER_TOKEN, is_manager=True)
    second, _ = w.add(0, NEW_MANAGER_TOKEN, is_manager=True)
    manager = w.bots.manager_bot()  # type: ignore[attr-defined]
    assert manager is not None and manager.id == second.id
    old = w.bots.get(first.id)
    assert old is not None and not old.is_manager and old.status is BotStatus.DISABLED
    # Re-registering the current manager (a restart) keeps it the one manager.
    w.add(0, NEW_MANAGER_TOKEN, is_manager=True)
    assert w.bots.manager_bot().id == second.id  # type: ignore[attr-defined]


def test_a_managed_bot_owner_change_moves_the_bot_to_the_new_owner(w: World) -> None:
    w.add(0, MANAGER_TOKEN, is_manager=True)
    created = w.admin.register_managed(ALICE, 444444444)
    assert created.bot.owner_id == ALICE and not created.refreshed
    w.admin.update_settings(ALICE, created.bot.id, SetWelcome("kept"))
    moved = w.admin.register_managed(BOB, 444444444)  # Telegram says Bob owns it now
    assert moved.bot.id == created.bot.id and moved.bot.owner_id == BOB and not moved.refreshed
    assert moved.bot.settings.welcome_text == "kept"
    assert [b.id for b in w.admin.list_bots(BOB)] == [created.bot.id]
    assert w.admin.list_bots(ALICE) == []
    with pytest.raises(BotNotFound):
        w.admin.details(ALICE, created.bot.id)


def test_an_ordinary_registration_never_takes_a_bot_from_its_owner(w: World) -> None:
    w.add(ALICE, OTHER_BOT_TOKEN)
    with pytest.raises(BotOwnedByAnotherAdmin):
        w.add(BOB, OTHER_BOT_TOKEN)
