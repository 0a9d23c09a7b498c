from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.outbox import PerCallOutbox
from tgm.domain.bots import Bot, BotSettings, BotStatus
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleUpdate

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingOutbox(PerCallOutbox):
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, str]] = []

    def send_message(self, bot_id: str, chat_id: int, text: str, **_: Any) -> None:
        self.sent.append((bot_id, chat_id, text))


class OneBot:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def get_bot(self, bot_id: str) -> Bot | None:
        return self.bot if bot_id == self.bot.id else None


def bot(status: BotStatus = BotStatus.ACTIVE, **settings: Any) -> Bot:
    return Bot("b1", "p1", 1, 2, "Shop_bot", status, b"s", b"h", BotSettings(**settings), NOW, NOW)


def envelope(text: str, language: str = "en") -> UpdateEnvelope:
    update = {
        "update_id": 1,
        "message": {"chat": {"id": 50}, "from": {"id": 50, "language_code": language}, "text": text},
    }
    return UpdateEnvelope("b1", 1, 0.0, "r", update)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", "👋 Hi! I am @Shop_bot. How can I help?"),
        ("/start@shop_bot", "👋 Hi! I am @Shop_bot. How can I help?"),
        ("/price", "R$ 10"),
        ("/PRICE extra words", "R$ 10"),
    ],
)
def test_known_commands_are_answered(text: str, expected: str) -> None:
    outbox = RecordingOutbox()
    outcome = HandleUpdate(OneBot(bot(custom_commands={"/price": "R$ 10"})), outbox)(envelope(text))
    assert outcome.replied
    assert outbox.sent == [("b1", 50, expected)]


@pytest.mark.parametrize("text", ["hello", "/start@other_bot", "/unknown", "", "price"])
def test_everything_else_is_ignored(text: str) -> None:
    outbox = RecordingOutbox()
    outcome = HandleUpdate(OneBot(bot(custom_commands={"/price": "R$ 10"})), outbox)(envelope(text))
    assert not outcome.replied
    assert outbox.sent == []


def test_welcome_text_setting_wins_and_language_falls_back_to_portuguese() -> None:
    outbox = RecordingOutbox()
    HandleUpdate(OneBot(bot()), outbox)(envelope("/start", language="fr"))
    HandleUpdate(OneBot(bot(welcome_text="Bem-vindo à loja!")), outbox)(envelope("/start"))
    assert [text for _, _, text in outbox.sent] == ["👋 Olá! Eu sou @Shop_bot. Como posso ajudar?", "Bem-vindo à loja!"]


@pytest.mark.parametrize("status", [BotStatus.DISABLED, BotStatus.DELETED, BotStatus.PENDING])
def test_a_bot_out_of_service_says_nothing(status: BotStatus) -> None:
    outbox = RecordingOutbox()
    assert not HandleUpdate(OneBot(bot(status)), outbox)(envelope("/start")).replied
    assert outbox.sent == []


def _user_envelope(text: str | None, user_id: int, update_id: int = 1) -> UpdateEnvelope:
    message: dict[str, Any] = {"chat": {"id": user_id}, "from": {"id": user_id, "language_code": "en"}}
    if text is not None:
        message["text"] = text
    return UpdateEnvelope("b1", update_id, 0.0, "r", {"update_id": update_id, "message": message})


def test_maintenance_answers_every_user_its_text_once_per_window_instead_of_the_usual_answers() -> None:
    from tgm.domain.clock import ManualClock
    from tgm.services.dispatcher.adapters.memory import InMemoryCooldowns

    clock = ManualClock()
    outbox = RecordingOutbox()
    handle = HandleUpdate(
        OneBot(bot(custom_commands={"/price": "R$ 10"}, maintenance_text="Back at 18h")),
        outbox,
        cooldowns=InMemoryCooldowns(clock),
        maintenance_notice_seconds=60,
    )
    assert handle(_user_envelope("/price", 7)).action == "maintenance:notice"
    assert handle(_user_envelope("/start", 7, 2)).action == "maintenance:quiet"  # same user, same minute
    assert handle(_user_envelope(None, 8, 3)).action == "maintenance:notice"  # any update, not only commands
    clock.advance(61)
    assert handle(_user_envelope("hello", 7, 4)).action == "maintenance:notice"
    assert outbox.sent == [("b1", 7, "Back at 18h"), ("b1", 8, "Back at 18h"), ("b1", 7, "Back at 18h")]


def test_leaving_maintenance_restores_the_usual_answers() -> None:
    outbox = RecordingOutbox()
    the_bot = bot(custom_commands={"/price": "R$ 10"}, maintenance_text="Back soon")
    handle = HandleUpdate(OneBot(the_bot), outbox)
    handle(_user_envelope("/price", 7))
    the_bot.settings = BotSettings(custom_commands={"/price": "R$ 10"})  # the admin turned it off
    outcome = handle(_user_envelope("/price", 7, 2))
    assert outcome.action == "command:/price"
    assert outbox.sent == [("b1", 7, "Back soon"), ("b1", 7, "R$ 10")]


def test_a_blocked_users_updates_are_dropped_until_the_block_expires_by_the_clock() -> None:
    from tgm.domain.clock import ManualClock

    clock = ManualClock()
    now = int(clock.now().timestamp())
    outbox = RecordingOutbox()
    handle = HandleUpdate(
        OneBot(bot(custom_commands={"/price": "R$ 10"}, maintenance_text="", blocked_users={7: now + 3600})),
        outbox,
        clock=clock,
    )
    assert handle(_user_envelope("/price", 7)).action == "ignored:blocked"
    assert handle(_user_envelope("/price", 8, 2)).action == "command:/price"  # only that user
    clock.advance(3601)
    assert handle(_user_envelope("/price", 7, 3)).action == "command:/price"
    assert outbox.sent == [("b1", 8, "R$ 10"), ("b1", 7, "R$ 10")]


def test_a_blocked_user_does_not_even_get_the_maintenance_text() -> None:
    from tgm.domain.clock import ManualClock

    clock = ManualClock()
    blocked = {7: int(clock.now().timestamp()) + 60}
    outbox = RecordingOutbox()
    handle = HandleUpdate(OneBot(bot(maintenance_text="Back soon", blocked_users=blocked)), outbox, clock=clock)
    assert handle(_user_envelope("/start", 7)).action == "ignored:blocked"
    assert outbox.sent == []


class AnsweringOutbox(RecordingOutbox):
    def __init__(self) -> None:
        super().__init__()
        self.answered: list[tuple[str, str, str | None]] = []

    def answer_callback_query(self, bot_id: str, callback_query_id: str, text: str | None = None) -> None:
        self.answered.append((bot_id, callback_query_id, text))


def _group_envelope(text: str, update_id: int = 1) -> UpdateEnvelope:
    message = {"chat": {"id": -100, "type": "supergroup"}, "from": {"id": 7}, "text": text}
    return UpdateEnvelope("b1", update_id, 0.0, "r", {"update_id": update_id, "message": message})


def test_maintenance_in_a_group_answers_only_commands_for_this_bot_and_buttons_always() -> None:
    outbox = AnsweringOutbox()
    handle = HandleUpdate(OneBot(bot(maintenance_text="Back soon " + "x" * 300)), outbox)
    assert handle(_group_envelope("just chatting")).action == "maintenance:ignored"
    assert handle(_group_envelope("/start@other_bot", 2)).action == "maintenance:ignored"
    assert handle(_group_envelope("/start@shop_bot", 3)).action == "maintenance:notice"
    press = {"update_id": 4, "callback_query": {"id": "cb-1", "from": {"id": 7}, "data": "x"}}
    assert handle(UpdateEnvelope("b1", 4, 0.0, "r", press)).action == "maintenance:callback"
    assert [chat for _, chat, _ in outbox.sent] == [-100]
    assert outbox.answered == [("b1", "cb-1", ("Back soon " + "x" * 300)[:200])]


def test_a_blocked_users_button_presses_are_dropped_too() -> None:
    from tgm.domain.clock import ManualClock

    clock = ManualClock()
    outbox = AnsweringOutbox()
    blocked = {7: int(clock.now().timestamp()) + 60}
    handle = HandleUpdate(OneBot(bot(maintenance_text="Back", blocked_users=blocked)), outbox, clock=clock)
    press = {"update_id": 4, "callback_query": {"id": "cb-1", "from": {"id": 7}, "data": "x"}}
    assert handle(UpdateEnvelope("b1", 4, 0.0, "r", press)).action == "ignored:blocked"
    assert outbox.answered == [] and outbox.sent == []
