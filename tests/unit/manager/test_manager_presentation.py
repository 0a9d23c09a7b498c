"""The manager bot says what (catalogue keys, values, signed actions); the dispatcher's presentation says how (HTML,
escaping, Telegram keyboards)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.unit.manager.test_manager_bot import ADMIN, MANAGER, FakeAdmin, FakeOutbox, make_bot
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.clock import ManualClock
from tgm.domain.effects import EffectIds, effect_id
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.manager_bot.dependencies import ManagerConfig
from tgm.domain.manager_bot.view import CreateBotKeyboard, Keyboard, RemoveKeyboard
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.view import Button, Buttons, Chat, Joined, Prerendered, Reply, Text
from tgm.services.dispatcher.manager_bot.state import InMemoryAdminSessions, InMemoryConversationStore
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView
from tgm.services.dispatcher.presentation.markup import MANAGED_BOT_REQUEST_ID, reply_markup
from tgm.services.dispatcher.presentation.text import as_html, as_plain

CHAT = Chat(MANAGER, ADMIN, "en", EffectIds("mgr:7"))  # answering update 7 of the manager bot


def test_values_are_escaped_in_html_but_catalogue_text_nested_in_them_is_not() -> None:
    reply = Text("mgr_bot_line", {"username": "a<b>&c", "status": Text("status_active")})
    assert as_html(reply, "en") == "• @a&lt;b&gt;&amp;c — ✅ active"


def test_a_listing_joins_its_lines_and_keeps_their_markup() -> None:
    reply = Joined([Text("mgr_bots_header"), Text("mgr_page", {"page": 1, "pages": 2})])
    assert as_html(reply, "en").splitlines()[0] == "🤖 <b>Your bots</b>"
    assert as_html(reply, "pt-br").splitlines()[0] == "🤖 <b>Seus bots</b>"


def test_prerendered_text_is_sent_as_it_is() -> None:
    assert as_html(Prerendered("<b>Sale</b> & more"), "en") == "<b>Sale</b> & more"


def test_labels_are_plain_text_where_telegram_reads_no_markup() -> None:
    assert as_plain(Text("btn_details", {"username": "a<b>"}), "en") == "ℹ️ @a<b>"


def test_buttons_become_an_inline_keyboard_with_their_signed_data() -> None:
    buttons = Buttons.of([[Button(Text("btn_stats"), CallbackAction.STATS, "signed-1")], []])
    assert reply_markup(buttons, "pt-br") == {
        "inline_keyboard": [[{"text": "📊 Estatísticas", "callback_data": "signed-1"}], []]
    }


def test_the_create_bot_offer_and_its_removal() -> None:
    offer = reply_markup(CreateBotKeyboard(Text("btn_create_bot")), "en")
    assert offer is not None
    button = offer["keyboard"][0][0]
    assert button["request_managed_bot"] == {"request_id": MANAGED_BOT_REQUEST_ID} and button["text"]
    assert offer["resize_keyboard"] and offer["one_time_keyboard"]
    assert reply_markup(RemoveKeyboard(), "en") == {"remove_keyboard": True}
    assert reply_markup(None, "en") is None


def test_the_view_sends_html_without_link_previews_and_plain_captions_and_notices() -> None:
    outbox = FakeOutbox()
    view = TelegramManagerView(outbox)
    view.say(CHAT, Text("mgr_usage", {"usage": Text("usage_join")}))
    assert outbox.sent == [
        {
            "chat_id": ADMIN,
            "text": "ℹ️ Usage: /join code",
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
    ]
    view.send_file(CHAT, "x.csv", b"a,b", "text/csv", Text("mgr_subscribers_csv", {"username": "a<b", "count": 2}))
    assert outbox.documents[0]["caption"] == "📄 Subscribers of @a<b: 2."
    view.answer_button(MANAGER, "q1", "en", Text("callback_invalid"), effects=CHAT.effects)
    view.answer_button(MANAGER, "q2", "en", effects=EffectIds("mgr:8"))
    assert outbox.answers == ["⚠️ This action is no longer valid.", None]
    # Each call under the next effect id of the update it answers: a redelivered update repeats none of them.
    assert outbox.effect_ids == [
        effect_id("mgr:7", 1),
        effect_id("mgr:7", 2),
        effect_id("mgr:7", 3),
        effect_id("mgr:8", 1),
    ]


@dataclass
class RecordingView:
    """A ManagerView that keeps what the manager bot decided to say."""

    said: list[tuple[Reply, Keyboard | None]] = field(default_factory=list)

    def say(self, chat: Chat, reply: Reply, keyboard: Keyboard | None = None) -> None:
        self.said.append((reply, keyboard))


def test_the_manager_bot_speaks_in_keys_and_signed_actions_not_in_telegram_shapes() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    tokens = CallbackTokens(b"s" * 32, clock)
    view = RecordingView()
    manager = ManagerBot(
        FakeAdmin(bot=make_bot(username="a<b>")),
        view,  # type: ignore[arg-type]  # only `say` is used by /mybots
        tokens,
        InMemoryConversationStore(clock),
        InMemoryAdminSessions(clock),
        ManagerConfig(),
        clock=clock,
    )
    update = {
        "update_id": 1,
        "message": {
            "message_id": 5,
            "from": {"id": ADMIN},
            "chat": {"id": ADMIN, "type": "private"},
            "text": "/mybots",
        },
    }
    manager(UpdateEnvelope(MANAGER, 1, 0.0, "r", update))
    [(reply, keyboard)] = view.said
    assert isinstance(reply, Joined) and reply.parts[0] == Text("mgr_bots_header")
    assert reply.parts[1] == Text("mgr_bot_line", {"username": "a<b>", "status": Text("status_active")})
    assert isinstance(keyboard, Buttons)
    details = keyboard.rows[0][0]
    assert details.action is CallbackAction.DETAILS and details.label == Text("btn_details", {"username": "a<b>"})
    claim = tokens.verify(details.data, ADMIN, ADMIN)
    assert claim is not None and claim.action is CallbackAction.DETAILS and claim.bot_id == make_bot().id
