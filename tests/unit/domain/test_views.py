"""The CAPTCHA, the inbox and the broadcast worker say what (catalogue keys, values, signed actions); the dispatcher's
presentation says how: HTML with values escaped where a message is formatted, plain text where it is not."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.unit.domain.test_captcha import BOT_ID, Clock, message, press
from tests.unit.domain.test_captcha import make_bot as captcha_bot
from tgm.domain.bots import CaptchaMode
from tgm.domain.broadcast import Broadcast, BroadcastState, progress_text
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.captcha import CaptchaGuard
from tgm.domain.effects import EffectIds
from tgm.domain.inbox import sender_text
from tgm.domain.outbound import OutboundCall, SendMessage
from tgm.domain.view import Buttons, Chat, Prerendered, Reply, Text
from tgm.services.dispatcher.adapters.captcha_store import InMemoryCaptchaStore
from tgm.services.dispatcher.presentation.broadcast_view import TelegramBroadcastView
from tgm.services.dispatcher.presentation.chat_view import TelegramChatView
from tgm.services.dispatcher.presentation.inbox_view import TelegramInboxView
from tgm.services.dispatcher.presentation.text import as_html

USER = 4242


@dataclass
class RecordingView:
    """A ChatView that keeps what it was asked to say."""

    said: list[tuple[Reply, Buttons | None]] = field(default_factory=list)
    notices: list[Text | None] = field(default_factory=list)

    def say(self, chat: Chat, reply: Reply, buttons: Buttons | None = None) -> None:
        self.said.append((reply, buttons))

    def edit(self, chat: Chat, message_id: int, reply: Reply, buttons: Buttons | None = None) -> None:
        self.said.append((reply, buttons))

    def answer_button(self, chat: Chat, query_id: str, notice: Text | None = None) -> None:
        self.notices.append(notice)


@dataclass
class Calls:
    calls: list[tuple[str, OutboundCall, int | None]] = field(default_factory=list)

    def send(self, bot_id: str, call: OutboundCall, *, effect_id: str, link_chat_id: int | None = None) -> None:
        self.calls.append((bot_id, call, link_chat_id))


def test_the_captcha_says_its_challenge_as_a_key_and_signed_emoji_buttons() -> None:
    clock, view = Clock(), RecordingView()
    tokens = CallbackTokens(b"k" * 32, clock)  # type: ignore[arg-type]
    guard = CaptchaGuard(InMemoryCaptchaStore(clock), tokens, view, rng=random.Random(7))  # type: ignore[arg-type]
    bot = captcha_bot(CaptchaMode.ON)
    guard.intercept(bot, message(USER), USER, EffectIds("u:1"))
    (challenge, buttons), *_ = view.said
    assert isinstance(challenge, Text) and challenge.key == "captcha_challenge"
    assert buttons is not None and [len(row) for row in buttons.rows] == [3, 3]
    options = [button for row in buttons.rows for button in row]
    assert challenge.values["emoji"] in [button.label for button in options]
    assert {button.action for button in options} == {CallbackAction.CAPTCHA}
    assert all(tokens.verify(button.data, USER, USER) is not None for button in options)  # signed for the user

    right = next(b.data for b in options if b.label == challenge.values["emoji"])
    guard.intercept(bot, press(USER, right), USER, EffectIds("u:2"))
    assert view.notices == [Text("captcha_pass_notice")] and view.said[-1] == (Text("captcha_passed"), None)


def test_the_captcha_and_the_inbox_replies_are_plain_text_with_values_shown_as_they_are() -> None:
    outbox = Calls()
    chat = Chat(BOT_ID, USER, "en", EffectIds("u:1"))
    TelegramChatView(outbox).say(chat, Text("captcha_challenge", {"emoji": "<b>&"}))
    ((_, call, _),) = outbox.calls
    assert call == SendMessage(USER, "🤖 Before we go on, show you are a person: tap the <b>&.")  # no parse mode


def test_the_inbox_names_the_sender_with_values_and_its_view_escapes_them_in_the_html_header() -> None:
    sender = sender_text({"first_name": "Ana <i>", "last_name": "&", "username": "ana"})
    assert sender == Text("inbox_sender_with_username", {"name": "Ana <i> &", "username": "ana"})
    assert sender_text({"id": 1}) == Text("inbox_sender", {"name": "?"})
    outbox = Calls()
    header = Text("inbox_header", {"sender": sender, "user_id": USER})
    TelegramInboxView(outbox).deliver_header(
        Chat(BOT_ID, 7, "en", EffectIds("u:1")), header, Buttons(()), link_chat_id=USER
    )
    ((_, call, link),) = outbox.calls
    assert isinstance(call, SendMessage) and call.parse_mode == "HTML" and link == USER
    assert call.text.startswith("📨 Message from <b>Ana &lt;i&gt; &amp;</b> (@ana) · id <code>4242</code>\n")


def test_the_broadcast_progress_carries_the_username_as_data_and_the_body_goes_as_html() -> None:
    running = Broadcast(
        "b", BOT_ID, 1, 1, "mgr", "a<b", "en", "<b>Sale</b>", BroadcastState.RUNNING, 9, total=3, sent=1
    )
    progress = progress_text(running, 0.0)
    assert progress.key == "mgr_broadcast_progress" and progress.values["username"] == "a<b"
    assert as_html(progress, "en").startswith("📣 <b>Sending to @a&lt;b's subscribers</b>\n✅ Sent: 1\n")
    body = TelegramBroadcastView(Calls()).body(USER, Prerendered(running.text))
    assert body == SendMessage(USER, "<b>Sale</b>", parse_mode="HTML")
