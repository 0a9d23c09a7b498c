"""ManagerBot with fakes: conversation logic, allowlist, admin session TTL, callbacks, escaping, routing."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.outbox import PerCallOutbox
from tgm.domain.administration.ports import (
    BotStats,
    Registration,
    SettingsChange,
    SetWelcome,
    Subscriber,
    SubscriberStats,
)
from tgm.domain.bots import Bot, BotSettings, BotStatus
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.clock import ManualClock
from tgm.domain.errors import BotNotFound, IllegalTransition
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.manager_bot.dependencies import ManagerConfig
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.services.dispatcher.manager_bot.router import UpdateRouter
from tgm.services.dispatcher.manager_bot.state import (
    InMemoryAdminSessions,
    InMemoryConversationStore,
    InMemoryUsedButtons,
)
from tgm.services.dispatcher.manager_bot.wiring import parse_admin_ids
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView

MANAGER = "mgr-0000"
ADMIN = 501
BOT_ID = "0b8f2c1e-4a6d-4f1b-9c2e-7d3a5b6c8e9f"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_bot(owner: int = ADMIN, status: BotStatus = BotStatus.ACTIVE, username: str = "shop_bot") -> Bot:
    return Bot(
        id=BOT_ID,
        public_id="p",
        owner_id=owner,
        telegram_bot_id=1,
        username=username,
        status=status,
        sealed_token=b"",
        webhook_secret_sha256=b"",
        settings=BotSettings(),
        created_at=NOW,
        updated_at=NOW,
    )


@dataclass
class FakeAdmin:
    bot: Bot = field(default_factory=make_bot)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    subscribers: list[Subscriber] = field(default_factory=list)

    def _mine(self, actor: int, bot_id: str) -> Bot:
        if actor != self.bot.owner_id or bot_id != self.bot.id:
            raise BotNotFound("no such bot")
        return self.bot

    def register_sealed(self, owner_id: int, sealed_token: bytes, sealed_by_bot_id: str, chat_id: int) -> Registration:
        self.calls.append(("register_sealed", owner_id, sealed_token, sealed_by_bot_id, chat_id))
        return Registration(self.bot, refreshed=False)

    def register_managed(self, owner_id: int, managed_bot_user_id: int) -> Registration:
        self.calls.append(("register_managed", owner_id, managed_bot_user_id))
        return Registration(self.bot, refreshed=False)

    def list_bots(self, owner_id: int) -> list[Bot]:
        return [self.bot] if owner_id == self.bot.owner_id else []

    def details(self, actor_id: int, bot_id: str) -> tuple[Bot, BotStats]:
        return self._mine(actor_id, bot_id), BotStats(3, 2, 7)

    def subscriber_stats(self, actor_id: int, bot_id: str) -> tuple[Bot, SubscriberStats]:
        self.calls.append(("subscribers", actor_id, bot_id))
        return self._mine(actor_id, bot_id), SubscriberStats(10, 6, 3, 1, 2, 5)

    def list_subscribers(self, actor_id: int, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        self._mine(actor_id, bot_id)
        self.calls.append(("list_subscribers", after_user_id, limit))
        return [item for item in self.subscribers if item.telegram_user_id > after_user_id][:limit]

    def set_enabled(self, actor_id: int, bot_id: str, enabled: bool) -> Bot:
        bot = self._mine(actor_id, bot_id)
        (bot.enable if enabled else bot.disable)(NOW)
        self.calls.append(("set_enabled", enabled))
        return bot

    def rotate_secret(self, actor_id: int, bot_id: str) -> Bot:
        self.calls.append(("rotate",))
        return self._mine(actor_id, bot_id)

    def delete(self, actor_id: int, bot_id: str) -> Bot:
        bot = self._mine(actor_id, bot_id)
        bot.delete(NOW)
        self.calls.append(("delete",))
        return bot

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        self.calls.append(("update", change))
        return self._mine(actor_id, bot_id)

    def record_interaction(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        self.calls.append(("record", bot_id, telegram_user_id))


@dataclass
class FakeOutbox(PerCallOutbox):
    sent: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)

    def send_message(self, bot_id: str, chat_id: int, text: str, **kwargs: Any) -> None:
        assert bot_id == MANAGER
        self.sent.append({"chat_id": chat_id, "text": text, **kwargs})
        self.order.append("send")

    def edit_message_text(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not used")

    def delete_message(self, bot_id: str, chat_id: int, message_id: int, **_kwargs: Any) -> None:
        self.deleted.append(message_id)
        self.order.append("delete")

    def answer_callback_query(self, bot_id: str, callback_query_id: str, text: str | None = None) -> None:
        self.answers.append(text)

    def send_document(
        self, bot_id: str, chat_id: int, filename: str, content: bytes, *, mime_type: str, caption: str = ""
    ) -> None:
        assert bot_id == MANAGER
        self.documents.append({"chat_id": chat_id, "filename": filename, "content": content, "caption": caption})
        self.order.append("document")


@dataclass
class Harness:
    bot: ManagerBot
    admin: FakeAdmin
    outbox: FakeOutbox
    tokens: CallbackTokens
    clock: ManualClock
    update_id: int = 0

    def message(self, text: str, user: int = ADMIN, sealed: tuple[str, ...] = (), lang: str = "pt-br") -> HandleOutcome:
        self.update_id += 1
        update = {
            "update_id": self.update_id,
            "message": {
                "message_id": 100 + self.update_id,
                "from": {"id": user, "is_bot": False, "first_name": "A", "language_code": lang},
                "chat": {"id": user, "type": "private"},
                "text": text,
            },
        }
        return self.bot(UpdateEnvelope(MANAGER, self.update_id, 0.0, "r", update, sealed))

    def press(self, data: str, user: int = ADMIN, chat: int = ADMIN) -> HandleOutcome:
        self.update_id += 1
        update = {
            "update_id": self.update_id,
            "callback_query": {
                "id": f"q{self.update_id}",
                "from": {"id": user, "is_bot": False, "first_name": "A"},
                "message": {"message_id": 1, "chat": {"id": chat, "type": "private"}},
                "data": data,
            },
        }
        return self.bot(UpdateEnvelope(MANAGER, self.update_id, 0.0, "r", update))

    def sign(self, action: CallbackAction, bot_id: str | None = BOT_ID, user: int = ADMIN) -> str:
        return self.tokens.sign(action, bot_id, user, user)

    @property
    def last(self) -> str:
        return str(self.outbox.sent[-1]["text"])


def harness(
    allowed: frozenset[int] = frozenset(), session_ttl: int = 1800, one_time: bool = False, events: Any = None
) -> Harness:
    clock = ManualClock(NOW)
    admin, outbox = FakeAdmin(), FakeOutbox()
    tokens = CallbackTokens(b"s" * 32, clock, ttl_seconds=900)
    bot = ManagerBot(
        admin,
        TelegramManagerView(outbox),
        tokens,
        InMemoryConversationStore(clock),
        InMemoryAdminSessions(clock),
        ManagerConfig(allowed_admin_ids=allowed, session_ttl_seconds=session_ttl),
        InMemoryUsedButtons(clock) if one_time else None,
        events=events,
        clock=clock,
    )
    return Harness(bot, admin, outbox, tokens, clock)


SEALED = base64.b64encode(b"ciphertext").decode()


def test_a_sealed_token_is_deleted_first_then_registered_still_sealed() -> None:
    h = harness()
    h.message("/addbot [sealed:0]", sealed=(SEALED,))
    assert h.outbox.order[0] == "delete"
    assert h.admin.calls[0] == ("register_sealed", ADMIN, b"ciphertext", MANAGER, ADMIN)
    assert h.outbox.sent[0]["text"] == "✅ Dado sensível salvo com segurança."
    assert all(m["parse_mode"] == "HTML" and m["disable_web_page_preview"] for m in h.outbox.sent)


def test_bare_addbot_waits_for_the_token_and_bad_text_is_refused() -> None:
    h = harness()
    h.message("/addbot")
    assert "Envie o token" in h.last
    h.message("not a token")
    assert "não é um token de bot válido" in h.last
    assert h.outbox.deleted  # a mangled token is not left in the chat
    assert not h.admin.calls


def test_allowlist_refuses_others_but_still_deletes_their_tokens() -> None:
    h = harness(allowed=frozenset({999}))
    h.message("/addbot [sealed:0]", sealed=(SEALED,))
    assert h.outbox.deleted
    assert "não tem permissão" in h.last
    assert not h.admin.calls
    h.message("/mybots")
    assert "não tem permissão" in h.last
    assert parse_admin_ids("1, 2 3") == frozenset({1, 2, 3}) and parse_admin_ids("") == frozenset()


def test_invalid_callbacks_are_answered_and_change_nothing() -> None:
    h = harness()
    h.message("/mybots")
    good = h.sign(CallbackAction.DELETE_DO)
    for outcome in (
        h.press(good, user=ADMIN + 1, chat=ADMIN),  # another user in the same chat
        # altered (not the last character: in unpadded base64 its low bits may be padding, decoding the same)
        h.press(good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]),
        h.press("nonsense"),  # unknown
    ):
        assert outcome.action == "manager:callback_invalid"
    h.clock.advance(901)
    assert h.press(good).action == "manager:callback_invalid"  # expired
    assert h.outbox.answers == ["⚠️ Essa ação não é válida mais."] * 4
    assert not [c for c in h.admin.calls if c[0] == "delete"]


def test_forged_bot_id_in_a_button_is_refused_by_the_registry() -> None:
    h = harness()
    h.message("/mybots")
    h.admin.bot = make_bot(owner=777)  # the id in the (validly signed) button is someone else's bot
    h.press(h.sign(CallbackAction.DISABLE))
    assert "Bot não encontrado" in h.last
    assert h.admin.bot.status is BotStatus.ACTIVE


def test_illegal_move_is_reported() -> None:
    h = harness()
    h.message("/mybots")
    h.press(h.sign(CallbackAction.ENABLE))  # active → active
    assert "Não é possível" in h.last


def test_destructive_actions_after_the_session_ttl_ask_again() -> None:
    h = harness(session_ttl=60)
    h.message("/mybots")
    h.press(h.sign(CallbackAction.ROTATE))
    assert ("rotate",) in h.admin.calls
    h.clock.advance(61)
    outcome = h.press(h.sign(CallbackAction.ROTATE))
    assert outcome.action == "manager:reauth"
    assert "sessão de admin expirou" in h.last
    assert h.admin.calls.count(("rotate",)) == 1
    markup = h.outbox.sent[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    h.press(markup)
    assert h.admin.calls.count(("rotate",)) == 2
    # Delete: always a confirmation, and again after expiry.
    h.press(h.sign(CallbackAction.DELETE_ASK))
    confirm = h.outbox.sent[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    h.clock.advance(61)
    assert h.press(confirm).action == "manager:reauth"
    assert ("delete",) not in h.admin.calls
    h.press(h.outbox.sent[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    assert ("delete",) in h.admin.calls


def test_user_text_is_escaped_in_replies() -> None:
    h = harness()
    h.admin.bot = make_bot(username="a<b>&c")
    h.message("/setwelcome @a<b>&c hello")
    assert "@a&lt;b&gt;&amp;c" in h.last
    assert h.admin.calls[-1] == ("update", SetWelcome("hello"))


def test_welcome_via_button_then_next_message() -> None:
    h = harness()
    h.message("/mybots")
    h.press(h.sign(CallbackAction.SET_WELCOME))
    assert "boas-vindas" in h.last
    h.message("/ola tudo bem")  # not a manager command: it is the answer
    assert h.admin.calls[-1] == ("update", SetWelcome("/ola tudo bem"))


def test_managed_bot_update_registers_through_the_registry() -> None:
    h = harness()
    update = {"update_id": 1, "managed_bot": {"user": {"id": ADMIN, "first_name": "A"}, "bot": {"id": 42}}}
    h.bot(UpdateEnvelope(MANAGER, 1, 0.0, "r", update))
    assert h.admin.calls == [("register_managed", ADMIN, 42)]
    assert h.outbox.sent[0]["text"] == "✅ Dado sensível salvo com segurança."


@pytest.mark.parametrize("is_manager", [True, False])
def test_router_sends_manager_updates_to_the_manager(is_manager: bool) -> None:
    bot = make_bot()
    bot.is_manager = is_manager
    seen: list[str] = []

    class Bots:
        def get_bot(self, bot_id: str) -> Bot | None:
            return bot

    admin = FakeAdmin()
    recorded: list[tuple[str, int, str | None]] = []

    class Recorder:
        def record(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
            recorded.append((bot_id, telegram_user_id, language_code))

    router = UpdateRouter(
        Bots(),
        manager=lambda: lambda env: seen.append("manager"),
        managed=lambda env: seen.append("managed"),
        admin=admin,
        recorder=Recorder(),
    )
    update = {"update_id": 1, "message": {"from": {"id": 9, "is_bot": False}, "chat": {"id": 9}, "text": "/start"}}
    router(UpdateEnvelope(BOT_ID, 1, 0.0, "r", update))
    assert seen == (["manager"] if is_manager else ["managed"])
    assert ((BOT_ID, 9, None) in recorded) is not is_manager
    assert not any(call[0] == "record" for call in admin.calls)  # stats never cost a registry call per update


def test_illegal_transition_is_a_domain_error() -> None:
    with pytest.raises(IllegalTransition):
        make_bot(status=BotStatus.DELETED).enable(NOW)


def test_a_destructive_button_acts_once_and_a_replay_changes_nothing() -> None:
    """Issue 11, item 8: within its TTL a signed button could be pressed again (or replayed)."""
    h = harness(one_time=True)
    h.message("/mybots")  # a fresh session: delete runs without re-confirmation
    delete = h.sign(CallbackAction.DELETE_DO)
    assert h.press(delete).action != "manager:callback_invalid"
    deletes = [c for c in h.admin.calls if c[0] == "delete"]
    assert len(deletes) == 1
    again = h.press(delete)
    assert again.action == "manager:callback_used"
    assert [c for c in h.admin.calls if c[0] == "delete"] == deletes
    assert h.outbox.answers[-1] == "⚠️ Essa ação não é válida mais."
    listing = h.sign(CallbackAction.LIST)  # ordinary buttons stay re-pressable
    assert h.press(listing).action == h.press(listing).action != "manager:callback_used"


def test_the_identity_confirmation_cannot_be_replayed_to_rotate_again() -> None:
    h = harness(session_ttl=60, one_time=True)
    h.message("/mybots")
    h.clock.advance(61)
    assert h.press(h.sign(CallbackAction.ROTATE)).action == "manager:reauth"
    confirm = h.outbox.sent[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    h.press(confirm)
    assert h.admin.calls.count(("rotate",)) == 1
    h.clock.advance(61)  # the session lapsed again: a replayed confirmation must not stand in for the admin
    assert h.press(confirm).action == "manager:callback_used"
    assert h.admin.calls.count(("rotate",)) == 1
