"""CaptchaGuard with the in-memory store: who is challenged, what a tap does, and what is never sent twice."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.outbox import PerCallOutbox
from tgm.domain.bots import Bot, BotSettings, BotStatus, CaptchaMode
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.captcha import CaptchaGuard, CaptchaPolicy
from tgm.domain.effects import EffectIds
from tgm.domain.updates import UpdateEnvelope
from tgm.services.dispatcher.adapters.captcha_store import InMemoryCaptchaStore
from tgm.services.dispatcher.presentation.chat_view import TelegramChatView

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BOT_ID = "2b7f3f5e-8f1c-4d7e-9a53-0c6f0f3b1a11"


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - T0).total_seconds()


class Outbox(PerCallOutbox):
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, Any]] = []
        self.edits: list[tuple[int, str, Any]] = []
        self.answers: list[tuple[str, str | None]] = []

    def send_message(self, bot_id: str, chat_id: int, text: str, **kw: Any) -> None:
        self.sent.append((chat_id, text, kw.get("reply_markup")))

    def edit_message_text(self, bot_id: str, chat_id: int, message_id: int, text: str, **kw: Any) -> None:
        self.edits.append((message_id, text, kw.get("reply_markup")))

    def answer_callback_query(self, bot_id: str, callback_query_id: str, text: str | None = None) -> None:
        self.answers.append((callback_query_id, text))


def make_bot(mode: CaptchaMode) -> Bot:
    return Bot(
        id=BOT_ID,
        public_id="p",
        owner_id=1,
        telegram_bot_id=10,
        username="shop_bot",
        status=BotStatus.ACTIVE,
        sealed_token=b"x",
        webhook_secret_sha256=b"",
        settings=BotSettings(captcha_mode=mode, language="en"),
        created_at=T0,
        updated_at=T0,
    )


def message(user: int, text: str = "/start", update_id: int = 1) -> UpdateEnvelope:
    update = {"update_id": update_id, "message": {"chat": {"id": user}, "from": {"id": user}, "text": text}}
    return UpdateEnvelope(BOT_ID, update_id, 0.0, "r", update)


def press(user: int, data: str, update_id: int = 2, message_id: int = 77) -> UpdateEnvelope:
    callback = {
        "id": f"cq{update_id}",
        "from": {"id": user, "language_code": "pt-br"},
        "data": data,
        "message": {"message_id": message_id, "chat": {"id": user}},
    }
    return UpdateEnvelope(BOT_ID, update_id, 0.0, "r", {"update_id": update_id, "callback_query": callback})


class Rig:
    def __init__(self, policy: CaptchaPolicy | None = None, **store: Any) -> None:
        self.clock = Clock()
        self.store = InMemoryCaptchaStore(self.clock, **store)  # type: ignore[arg-type]
        self.outbox = Outbox()
        self.tokens = CallbackTokens(b"k" * 32, self.clock)  # type: ignore[arg-type]
        view = TelegramChatView(self.outbox)  # type: ignore[arg-type]
        self.guard = CaptchaGuard(self.store, self.tokens, view, policy or CaptchaPolicy(), random.Random(7))  # type: ignore[arg-type]

    def buttons(self, markup: Any) -> list[dict[str, str]]:
        return [b for row in markup["inline_keyboard"] for b in row]

    def right_and_wrong(self, text: str, markup: Any) -> tuple[str, str]:
        target = text.rsplit(" ", 1)[1].rstrip(".")
        right = next(b["callback_data"] for b in self.buttons(markup) if b["text"] == target)
        wrong = next(b["callback_data"] for b in self.buttons(markup) if b["text"] != target)
        return right, wrong


def intercept(r: Rig, bot: Bot, envelope: UpdateEnvelope, user_id: int | None) -> str | None:
    """As HandleUpdate asks: with the update's effect ids."""
    return r.guard.intercept(bot, envelope, user_id, EffectIds.for_update(envelope))


def test_off_never_challenges_and_on_challenges_only_users_the_bot_does_not_know() -> None:
    r = Rig()
    assert intercept(r, make_bot(CaptchaMode.OFF), message(5), 5) is None
    assert intercept(r, make_bot(CaptchaMode.ON), message(5), 5) is None, "served while off: known"
    assert intercept(r, make_bot(CaptchaMode.ON), message(6), 6) == "captcha:challenged"
    ((chat, text, markup),) = r.outbox.sent
    assert chat == 6 and "tap the" in text and len(r.buttons(markup)) == 6
    claims = [r.tokens.verify(b["callback_data"], 6, 6) for b in r.buttons(markup)]
    assert [c.action for c in claims if c] == [CallbackAction.CAPTCHA] * 6
    assert r.tokens.verify(r.buttons(markup)[0]["callback_data"], 7, 7) is None, "bound to the user and chat"


def test_one_challenge_while_it_is_open_then_a_right_tap_lets_the_user_in() -> None:
    r = Rig()
    bot = make_bot(CaptchaMode.ON)
    assert intercept(r, bot, message(6), 6) == "captcha:challenged"
    assert intercept(r, bot, message(6, update_id=3), 6) == "captcha:pending"
    assert intercept(r, bot, press(6, "forged"), 6) == "captcha:pending"
    assert len(r.outbox.sent) == 1, "a flood costs one message"
    _, text, markup = r.outbox.sent[0]
    right, _ = r.right_and_wrong(text, markup)
    assert intercept(r, bot, press(6, right), 6) == "captcha:passed"
    assert r.outbox.edits[-1][0] == 77 and "Obrigado" in r.outbox.edits[-1][1]
    assert intercept(r, bot, message(6, update_id=4), 6) is None


def test_a_wrong_tap_draws_a_new_challenge_and_three_lock_the_user_out() -> None:
    r = Rig()
    bot = make_bot(CaptchaMode.ON)
    intercept(r, bot, message(6), 6)
    _, text, markup = r.outbox.sent[0]
    _, wrong = r.right_and_wrong(text, markup)
    assert intercept(r, bot, press(6, wrong, 2), 6) == "captcha:wrong"
    assert r.outbox.answers[-1] == ("cq2", "❌ Não foi esse. Tentativas restantes: 2."), "the presser's language"
    _, text2, markup2 = r.outbox.edits[-1]
    right2, wrong2 = r.right_and_wrong(text2, markup2)
    assert intercept(r, bot, press(6, wrong2, 3), 6) == "captcha:wrong"
    _, text3, markup3 = r.outbox.edits[-1]
    _, wrong3 = r.right_and_wrong(text3, markup3)
    assert intercept(r, bot, press(6, wrong3, 4), 6) == "captcha:locked"
    sent_before = len(r.outbox.sent)
    assert intercept(r, bot, message(6, update_id=5), 6) == "captcha:locked"
    assert intercept(r, bot, press(6, right2, 6), 6) == "captcha:locked", "no answer counts while locked"
    assert len(r.outbox.sent) == sent_before, "locked: nothing sent"
    r.clock.at += timedelta(seconds=601)
    assert intercept(r, bot, message(6, update_id=7), 6) == "captcha:challenged"


def test_auto_turns_on_when_new_users_surge_and_known_users_pass_through() -> None:
    r = Rig(new_users_per_minute=3, attack_seconds=900, warmup_seconds=0)
    bot = make_bot(CaptchaMode.AUTO)
    for user in (1, 2, 3):
        assert intercept(r, bot, message(user), user) is None
    assert intercept(r, bot, message(4), 4) is None, "the 4th new user crosses the threshold"
    assert r.store.under_attack(BOT_ID)
    assert intercept(r, bot, message(5), 5) == "captcha:challenged"
    assert intercept(r, bot, message(2), 2) is None, "known before the attack"
    r.clock.at += timedelta(seconds=901)
    assert not r.store.under_attack(BOT_ID)
    assert intercept(r, bot, message(6), 6) is None


def test_the_warmup_only_learns_users() -> None:
    r = Rig(new_users_per_minute=2, warmup_seconds=3600)
    bot = make_bot(CaptchaMode.AUTO)
    for user in range(1, 20):
        assert intercept(r, bot, message(user), user) is None
    assert not r.store.under_attack(BOT_ID)


@pytest.mark.parametrize("mode", list(CaptchaMode))
def test_updates_without_a_sender_are_never_stopped(mode: CaptchaMode) -> None:
    r = Rig()
    assert intercept(r, make_bot(mode), message(5), None) is None
    assert r.outbox.sent == [] and not r.store.gate(BOT_ID, 5).known


def test_a_button_of_an_earlier_challenge_never_passes() -> None:
    r = Rig(CaptchaPolicy(max_attempts=20))
    bot = make_bot(CaptchaMode.ON)
    intercept(r, bot, message(6), 6)
    _, text, markup = r.outbox.sent[0]
    _, wrong = r.right_and_wrong(text, markup)
    assert intercept(r, bot, press(6, wrong, 2), 6) == "captcha:wrong"
    # Every button of the first keyboard, the one at the new answer's position and the old right one included.
    for update_id, button in enumerate(r.buttons(markup), start=3):
        assert intercept(r, bot, press(6, button["callback_data"], update_id), 6) == "captcha:wrong"
    assert not r.store.gate(BOT_ID, 6).known
    _, text_now, markup_now = r.outbox.edits[-1]
    right_now, _ = r.right_and_wrong(text_now, markup_now)
    assert intercept(r, bot, press(6, right_now, 99), 6) == "captcha:passed"


def test_challenges_go_to_private_chats_only_and_group_chatter_teaches_nothing() -> None:
    r = Rig(new_users_per_minute=1, warmup_seconds=0)
    group = UpdateEnvelope(
        BOT_ID,
        9,
        0.0,
        "r",
        {"update_id": 9, "message": {"chat": {"id": -100, "type": "group"}, "from": {"id": 8}, "text": "hi"}},
    )
    for _ in range(5):
        assert intercept(r, make_bot(CaptchaMode.AUTO), group, 8) is None
    assert not r.store.gate(BOT_ID, 8).known and not r.store.under_attack(BOT_ID)
    assert intercept(r, make_bot(CaptchaMode.ON), group, 8) == "captcha:group"
    assert r.outbox.sent == [], "nothing posted in the group"
