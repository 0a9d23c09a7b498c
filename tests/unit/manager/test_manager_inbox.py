"""/inbox @bot on|off in the manager bot (issue 15): switched through the registry for the acting admin, the state
shown, and a warning when the bot cannot write to its admin yet (they never started it)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tests.unit.manager.test_manager_bot import ADMIN, BOT_ID, MANAGER, NOW, FakeAdmin, FakeOutbox
from tgm.domain.administration.ports import SetInboxMode, SettingsChange
from tgm.domain.bots import Bot
from tgm.domain.callback_tokens import CallbackTokens
from tgm.domain.clock import ManualClock
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.manager_bot.dependencies import ManagerConfig
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.services.dispatcher.adapters.inbox_links import InMemoryInboxLinks
from tgm.services.dispatcher.manager_bot.state import InMemoryAdminSessions, InMemoryConversationStore
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView


@dataclass
class SwitchingAdmin(FakeAdmin):
    """The registry's effect of SetInboxMode on the one bot (others are refused by _mine as BotNotFound)."""

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        bot = super().update_settings(actor_id, bot_id, change)
        if isinstance(change, SetInboxMode):
            self.bot = replace(bot, settings=replace(bot.settings, inbox_enabled=change.enabled))
        return self.bot


class Rig:
    def __init__(self) -> None:
        clock = ManualClock(NOW)
        self.admin, self.outbox, self.links = SwitchingAdmin(), FakeOutbox(), InMemoryInboxLinks(clock=clock)
        self.bot = ManagerBot(
            self.admin,
            TelegramManagerView(self.outbox),
            CallbackTokens(b"s" * 32, clock),
            InMemoryConversationStore(clock),
            InMemoryAdminSessions(clock),
            ManagerConfig(),
            clock=clock,
            inbox_links=self.links,
        )
        self.update_id = 0

    def say(self, text: str, user: int = ADMIN) -> tuple[HandleOutcome, list[str]]:
        self.update_id += 1
        message = {
            "message_id": self.update_id,
            "from": {"id": user, "is_bot": False, "first_name": "A", "language_code": "en"},
            "chat": {"id": user, "type": "private"},
            "text": text,
        }
        before = len(self.outbox.sent)
        outcome = self.bot(UpdateEnvelope(MANAGER, self.update_id, 0.0, "r", {"update_id": 1, "message": message}))
        return outcome, [str(sent["text"]) for sent in self.outbox.sent[before:]]


def changes(admin: FakeAdmin) -> list[Any]:
    return [call[1] for call in admin.calls if call[0] == "update"]


def test_switching_on_warns_until_the_admin_started_the_bot_then_not() -> None:
    rig = Rig()
    outcome, said = rig.say("/inbox @shop_bot on")
    assert outcome.action == "manager:inbox" and changes(rig.admin) == [SetInboxMode(True)]
    assert len(said) == 2 and "Inbox of @shop_bot: on" in said[0] and "/start" in said[1]
    rig.links.mark_reachable(BOT_ID, ADMIN)  # the admin wrote to the bot (HandleUpdate does this)
    _, said = rig.say("/inbox @shop_bot on")
    assert len(said) == 1 and "on" in said[0]


def test_switching_off_and_showing_the_state() -> None:
    rig = Rig()
    rig.say("/inbox @shop_bot on")
    _, said = rig.say("/inbox @shop_bot")
    assert "on" in said[0] and changes(rig.admin) == [SetInboxMode(True)], "no mode: only shown"
    _, said = rig.say("/inbox @shop_bot off")
    assert said == ["📭 Inbox of @shop_bot: off."] and changes(rig.admin)[-1] == SetInboxMode(False)


def test_bad_usage_and_another_admins_bot_change_nothing() -> None:
    rig = Rig()
    outcome, said = rig.say("/inbox @shop_bot maybe")
    assert outcome.action == "manager:usage" and "/inbox @bot on | off" in said[0]
    outcome, _ = rig.say("/inbox @shop_bot on", user=ADMIN + 1)
    assert outcome.action == "manager:not_found"
    assert changes(rig.admin) == [] and not rig.admin.bot.settings.inbox_enabled
