"""Co-admins through the manager bot (issue 15): ManagerBot over the registry's real BotAdministration with in-memory
adapters and a manual clock. Invite link and code, joining with /start <code> or /join, the owner told, what an admin
sees and may do, signed revoke buttons, forged and stale buttons refused, redeem attempts bounded per user."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.manager.test_manager_bot import MANAGER, NOW, FakeOutbox, Harness
from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN, FakeTelegram
from tgm.domain.administration.bot_administration import BotAdministration
from tgm.domain.administration.register_bot import RegisterBot, RegisterBotCommand
from tgm.domain.bots import Bot, BotSettings, BotStatus, BotToken
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.clock import ManualClock
from tgm.domain.inbound import InboundGuard, InboundPolicy
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.manager_bot.dependencies import ManagerConfig
from tgm.domain.updates import UpdateEnvelope
from tgm.services.botregistry.adapters.memory import (
    InMemoryBotAdminStore,
    InMemoryBotRepository,
    InMemoryInteractionStats,
)
from tgm.services.dispatcher.adapters.memory import InMemoryCooldowns, InMemoryRateLimiter
from tgm.services.dispatcher.container import _bot_actions
from tgm.services.dispatcher.manager_bot.state import (
    InMemoryAdminSessions,
    InMemoryConversationStore,
    InMemoryUsedButtons,
)
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView

OWNER, HELPER, STRANGER = 501, 602, 703
MANAGER_TOKEN = "555555555:AAManagerFakeTokenForTests_abcdefghij"
LINK = re.compile(r"https://t\.me/mgr_bot\?start=([A-Za-z0-9_-]+)")


class Telegram(FakeTelegram):
    def __init__(self) -> None:
        super().__init__()
        self.known[555555555] = "mgr_bot"

    def delete_webhook(self, token: BotToken, drop_pending_updates: bool = False) -> None:
        pass


class World(Harness):
    registry: BotAdministration
    first: Bot
    other: Bot

    def to(self, chat: int) -> list[str]:
        return [str(m["text"]) for m in self.outbox.sent if m["chat_id"] == chat]

    def buttons(self, chat: int) -> dict[str, str]:
        message = [m for m in self.outbox.sent if m["chat_id"] == chat][-1]
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        return {item["text"]: item["callback_data"] for row in rows for item in row}

    def invite(self) -> str:
        self.message("/invite @first_bot", user=OWNER)
        found = LINK.search(self.to(OWNER)[-1])
        assert found is not None, self.to(OWNER)[-1]
        return found.group(1)

    def welcome(self) -> str:
        return self.registry.details(OWNER, self.first.id)[0].settings.welcome_text


@pytest.fixture
def w() -> World:
    clock = ManualClock(NOW)
    bots, telegram, vault = InMemoryBotRepository(), Telegram(), InMemoryTokenVault()
    register = RegisterBot(bots, telegram, vault, clock, "https://hooks.test")
    register.register(RegisterBotCommand(owner_id=0, token=BotToken(MANAGER_TOKEN), is_manager=True))
    registry = BotAdministration(
        bots=bots,
        manager=bots,  # type: ignore[arg-type]
        telegram=telegram,
        vault=vault,
        clock=clock,
        register_bot=register,
        stats=InMemoryInteractionStats(),
        admins=InMemoryBotAdminStore(),
    )
    tokens = CallbackTokens(b"s" * 32, clock, ttl_seconds=900)
    outbox = FakeOutbox()
    manager = ManagerBot(
        registry,
        TelegramManagerView(outbox),
        tokens,
        InMemoryConversationStore(clock),
        InMemoryAdminSessions(clock),
        ManagerConfig(),
        InMemoryUsedButtons(clock),
        clock=clock,
    )
    world = World(manager, None, outbox, tokens, clock)  # type: ignore[arg-type]
    world.registry = registry
    world.first = register.register(RegisterBotCommand(owner_id=OWNER, token=BotToken(TOKEN)))[0]
    world.other = register.register(RegisterBotCommand(owner_id=STRANGER, token=BotToken(OTHER_BOT_TOKEN)))[0]
    return world


def test_the_owner_invites_the_helper_joins_by_link_and_the_owner_is_told(w: World) -> None:
    code = w.invite()
    reply = w.to(OWNER)[-1]
    assert f"<code>/join {code}</code>" in reply and "2026-01-02 00:00 UTC" in reply  # 24 h, one use
    w.message(f"/start {code}", user=HELPER)
    assert "Agora você administra @first_bot" in w.to(HELPER)[-1]
    assert f"(id {HELPER}) agora administra @first_bot" in w.to(OWNER)[-1]
    w.message("/mybots", user=HELPER, lang="en")
    assert "@first_bot — ✅" in w.to(HELPER)[-1] and "👥 admin" in w.to(HELPER)[-1]
    labels = " ".join(w.buttons(HELPER))
    assert "Disable" in labels or "Desativar" in labels
    assert "Rotate" not in labels and "Novo segredo" not in labels and "Delete" not in labels and "Apagar" not in labels
    w.message("/setwelcome @first_bot Olá do ajudante", user=HELPER)
    assert w.welcome() == "Olá do ajudante"


def test_an_admin_is_refused_delete_rotate_invite_and_admins_even_with_a_validly_signed_button(w: World) -> None:
    w.message(f"/join {w.invite()}", user=HELPER)
    for action in (CallbackAction.DELETE_DO, CallbackAction.ROTATE, CallbackAction.INVITE, CallbackAction.ADMINS):
        w.press(w.tokens.sign(action, w.first.id, HELPER, HELPER), user=HELPER, chat=HELPER)
        assert w.to(HELPER)[-1] == "⛔ Só o dono do bot pode fazer isso.", action
    for command in ("/invite @first_bot", "/admins @first_bot"):
        w.message(command, user=HELPER)
        assert w.to(HELPER)[-1] == "⛔ Só o dono do bot pode fazer isso."
    assert w.registry.details(OWNER, w.first.id)[0].status is BotStatus.ACTIVE
    assert w.registry.admins(OWNER, w.first.id)[2] == []  # no invite was made by the admin


def test_an_admin_of_one_bot_cannot_reach_another(w: World) -> None:
    w.message(f"/join {w.invite()}", user=HELPER)
    w.message("/setwelcome @second_bot pwned", user=HELPER)
    assert "Bot não encontrado entre os seus" in w.to(HELPER)[-1]
    w.press(w.tokens.sign(CallbackAction.DISABLE, w.other.id, HELPER, HELPER), user=HELPER, chat=HELPER)
    assert w.registry.details(STRANGER, w.other.id)[0].status is BotStatus.ACTIVE
    assert w.registry.details(STRANGER, w.other.id)[0].settings == BotSettings(language="pt-BR")


def test_bad_codes_get_clear_replies_and_change_nothing(w: World) -> None:
    code = w.invite()
    w.message(f"/join {code}", user=OWNER)
    assert "você é o dono desse bot" in w.to(OWNER)[-1]
    w.message("/join nope", user=HELPER)
    assert "esse convite não existe" in w.to(HELPER)[-1]
    w.message("/join", user=HELPER)
    assert "/join código" in w.to(HELPER)[-1]
    w.message("/start ref-from-elsewhere!", user=HELPER)  # not an invite's shape: the usual help
    assert "Gerenciador de bots" in w.to(HELPER)[-1]
    w.clock.advance(24 * 3600)
    w.message(f"/join {code}", user=HELPER)
    assert "esse convite expirou" in w.to(HELPER)[-1]
    fresh = w.invite()
    w.message(f"/join {fresh}", user=HELPER)
    w.message(f"/start {fresh}", user=STRANGER)
    assert "esse convite já foi usado" in w.to(STRANGER)[-1]
    assert [a.telegram_user_id for a in w.registry.admins(OWNER, w.first.id)[1]] == [HELPER]


def test_the_owner_revokes_with_a_signed_button_and_the_admin_is_refused_at_once(w: World) -> None:
    w.message(f"/join {w.invite()}", user=HELPER)
    w.invite()  # one pending
    w.message("/admins @first_bot", user=OWNER)
    listing = w.to(OWNER)[-1]
    assert f"id {HELPER}" in listing and "convite pendente" in listing
    buttons = w.buttons(OWNER)
    revoke = buttons[f"🚫 Revogar id {HELPER}"]
    withdraw = next(data for label, data in buttons.items() if label.startswith("✖️ Cancelar convite"))
    w.press(revoke, user=HELPER, chat=HELPER)  # the owner's button pressed by someone else: refused
    assert w.outbox.answers[-1] == "⚠️ Essa ação não é válida mais."
    w.press(revoke[:-2] + ("AA" if not revoke.endswith("AA") else "BB"), user=OWNER, chat=OWNER)  # forged
    assert w.outbox.answers[-1] == "⚠️ Essa ação não é válida mais."
    assert [a.telegram_user_id for a in w.registry.admins(OWNER, w.first.id)[1]] == [HELPER]

    w.press(revoke, user=OWNER, chat=OWNER)
    assert f"id {HELPER} não administra mais @first_bot" in w.to(OWNER)[-1]
    assert "Você não administra mais @first_bot" in w.to(HELPER)[-1]
    w.message("/setwelcome @first_bot ainda aqui?", user=HELPER)
    assert "ainda aqui" not in w.welcome()
    w.press(w.tokens.sign(CallbackAction.DISABLE, w.first.id, HELPER, HELPER), user=HELPER, chat=HELPER)
    assert w.registry.details(OWNER, w.first.id)[0].status is BotStatus.ACTIVE

    w.press(withdraw, user=OWNER, chat=OWNER)
    assert "cancelado" in w.to(OWNER)[-1]
    assert w.registry.admins(OWNER, w.first.id)[2] == []
    w.clock.advance(901)  # a stale button (older than the callback TTL) does nothing either
    w.press(revoke, user=OWNER, chat=OWNER)
    assert w.outbox.answers[-1] == "⚠️ Essa ação não é válida mais."


def test_an_admin_leaves_on_their_own(w: World) -> None:
    w.message(f"/join {w.invite()}", user=HELPER)
    w.message("/leave @first_bot", user=HELPER)
    assert "Você deixou de administrar @first_bot" in w.to(HELPER)[-1]
    w.message("/mybots", user=HELPER)
    assert "ainda não tem bots" in w.to(HELPER)[-1]


class _Directory:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def get_bot(self, bot_id: str) -> Bot:
        return self.bot


def test_redeem_attempts_are_bounded_per_user_by_the_inbound_guard(w: World) -> None:
    manager_bot = dataclasses.replace(w.first, is_manager=True, id=MANAGER)
    guard = InboundGuard(
        InMemoryRateLimiter(w.clock),
        InMemoryCooldowns(w.clock),
        w.outbox,
        InboundPolicy(),
        _bot_actions(_Directory(manager_bot)),
    )

    def attempt(text: str, user: int = HELPER) -> bool:
        update = {
            "update_id": 1,
            "message": {"from": {"id": user}, "chat": {"id": user, "type": "private"}, "text": text},
        }
        return guard.check(UpdateEnvelope(MANAGER, 1, 0.0, "r", update)).allowed

    assert all(attempt(f"/join guess{i}") for i in range(10))
    assert not attempt("/join guess10")  # the 11th in ten minutes
    assert all(attempt(f"/start guess{i}") for i in range(10)) and not attempt("/start guess10")
    assert attempt("/join guess", user=STRANGER)  # per user
    w.clock.advance(600)
    assert attempt("/join guess11")
