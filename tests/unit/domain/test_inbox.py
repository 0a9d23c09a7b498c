"""The feedback inbox through HandleUpdate (issue 15): who gets what, what a reply reaches, what a button does, and
what never crosses from one bot (or one chat) to another. The outbox fake numbers each message it is given and
links inbox deliveries as the dispatcher does once Telegram answered (link_sent in
src/tgm/services/dispatcher/outbound/after_send.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.outbox import PerCallOutbox
from tgm.domain.administration.ports import BlockUser, SettingsChange, UnblockUser
from tgm.domain.administration.setting_rules import MAX_BLOCK_SECONDS
from tgm.domain.bots import Bot, BotSettings, BotStatus
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.clock import ManualClock
from tgm.domain.errors import BotNotFound
from tgm.domain.inbox import ACK_COOLDOWN_SECONDS, FeedbackInbox, InboxPolicy, inbox_recipients
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleUpdate
from tgm.services.dispatcher.adapters.inbox_links import InMemoryInboxLinks
from tgm.services.dispatcher.adapters.memory import InMemoryCooldowns
from tgm.services.dispatcher.presentation.inbox_view import TelegramInboxView

BOT_A = "2b7f3f5e-8f1c-4d7e-9a53-0c6f0f3b1a11"
BOT_B = "5c0d2a7e-1111-4d7e-9a53-0c6f0f3b1a22"
BOT_C = "9e1d2a7e-3333-4d7e-9a53-0c6f0f3b1a33"  # also OWNER_A's
OWNER_A, OWNER_B = 1001, 2002
USER, OTHER_USER = 77, 88
KEY = b"k" * 32


class Outbox(PerCallOutbox):
    """Numbers messages per (bot, chat) as Telegram does, and links inbox deliveries once "sent"."""

    def __init__(self, links: InMemoryInboxLinks) -> None:
        self.links = links
        self.calls: list[dict[str, Any]] = []
        self._next: dict[tuple[str, int], int] = {}

    def _number(self, bot_id: str, chat_id: int, link_chat_id: int | None) -> int:
        message_id = self._next.get((bot_id, chat_id), 500) + 1
        self._next[(bot_id, chat_id)] = message_id
        if link_chat_id is not None:
            self.links.link(bot_id, chat_id, message_id, link_chat_id)
        return message_id

    def send_message(self, bot_id: str, chat_id: int, text: str, *, link_chat_id: int | None = None, **kw: Any) -> None:
        message_id = self._number(bot_id, chat_id, link_chat_id)
        self.calls.append({"method": "send", "bot": bot_id, "chat": chat_id, "text": text, "id": message_id, **kw})

    def copy_message(
        self,
        bot_id: str,
        chat_id: int,
        from_chat_id: int,
        message_id: int,
        *,
        link_chat_id: int | None = None,
        **kw: Any,
    ) -> None:
        new_id = self._number(bot_id, chat_id, link_chat_id)
        self.calls.append(
            {"method": "copy", "bot": bot_id, "chat": chat_id, "from": from_chat_id, "of": message_id, "id": new_id}
        )

    def edit_message_text(self, bot_id: str, chat_id: int, message_id: int, text: str, **kw: Any) -> None:
        self.calls.append({"method": "edit", "bot": bot_id, "chat": chat_id, "of": message_id, "text": text, **kw})

    def answer_callback_query(self, bot_id: str, callback_query_id: str, text: str | None = None) -> None:
        self.calls.append({"method": "answer", "bot": bot_id, "query": callback_query_id, "text": text})

    def answer_callback_query_texts(self) -> list[str | None]:
        return [call["text"] for call in self.calls if call["method"] == "answer"]

    def take(self) -> list[dict[str, Any]]:
        taken, self.calls = self.calls, []
        return taken


class Bots:
    """The bot directory and the registry's settings RPC in one: blocks apply to the bot the handler reads next."""

    def __init__(self, clock: ManualClock, *bots: Bot) -> None:
        self.clock = clock
        self.bots = {bot.id: bot for bot in bots}
        self.changes: list[tuple[int, str, SettingsChange]] = []

    def get_bot(self, bot_id: str) -> Bot | None:
        return self.bots.get(bot_id)

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        bot = self.bots.get(bot_id)
        if bot is None or bot.owner_id != actor_id:
            raise BotNotFound(bot_id)  # the registry's tenant check
        self.changes.append((actor_id, bot_id, change))
        blocked = dict(bot.settings.blocked_users)
        if isinstance(change, BlockUser):
            blocked[change.telegram_user_id] = int(self.clock.now().timestamp()) + change.seconds
        elif isinstance(change, UnblockUser):
            blocked.pop(change.telegram_user_id, None)
        self.bots[bot_id] = replace(bot, settings=replace(bot.settings, blocked_users=blocked))
        return self.bots[bot_id]


def make_bot(bot_id: str, owner: int, username: str, *, inbox: bool = True) -> Bot:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return Bot(
        id=bot_id,
        public_id="p" + username,
        owner_id=owner,
        telegram_bot_id=owner * 10,
        username=username,
        status=BotStatus.ACTIVE,
        sealed_token=b"x",
        webhook_secret_sha256=b"",
        settings=BotSettings(language="en", inbox_enabled=inbox, custom_commands={"/price": "10"}),
        created_at=now,
        updated_at=now,
    )


class Backlog:
    def __init__(self) -> None:
        self.waiting: dict[tuple[str, int], int] = {}

    def pending(self, bot_id: str, chat_id: int) -> int:
        return self.waiting.get((bot_id, chat_id), 0)


class Rig:
    def __init__(self, *, inbox_a: bool = True) -> None:
        self.clock = ManualClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
        self.links = InMemoryInboxLinks(clock=self.clock)
        self.outbox = Outbox(self.links)
        self.tokens = CallbackTokens(KEY, self.clock, ttl_seconds=3600)
        self.bots = Bots(
            self.clock,
            make_bot(BOT_A, OWNER_A, "shop_bot", inbox=inbox_a),
            make_bot(BOT_B, OWNER_B, "other_bot"),
            make_bot(BOT_C, OWNER_A, "second_bot"),
        )
        self.backlog = Backlog()
        self.inbox = FeedbackInbox(
            self.links,
            self.outbox,
            TelegramInboxView(self.outbox),
            self.tokens,
            self.bots,
            cooldowns=InMemoryCooldowns(self.clock),
            backlog=self.backlog,
        )
        self.handle = HandleUpdate(self.bots, self.outbox, clock=self.clock, inbox=self.inbox)  # type: ignore[arg-type]
        self._update_id = 0

    def _envelope(self, bot_id: str, kind: str, payload: dict[str, Any]) -> UpdateEnvelope:
        self._update_id += 1
        return UpdateEnvelope(bot_id, self._update_id, 0.0, "r", {"update_id": self._update_id, kind: payload})

    def message(
        self,
        bot_id: str,
        user: int,
        text: str | None = "hello",
        *,
        message_id: int = 10,
        reply_to: int | None = None,
        chat_id: int | None = None,
        **extra: Any,
    ) -> str:
        sender = {"id": user, "is_bot": False, "first_name": "Ana <b>", "username": "ana", "language_code": "en"}
        chat = chat_id if chat_id is not None else user
        payload: dict[str, Any] = {
            "message_id": message_id,
            "from": sender,
            "chat": {"id": chat, "type": "private" if chat > 0 else "group"},
            **extra,
        }
        if text is not None:
            payload["text"] = text
        if reply_to is not None:
            payload["reply_to_message"] = {"message_id": reply_to, "chat": {"id": chat}, "text": f"id {OTHER_USER}"}
        return self.handle(self._envelope(bot_id, "message", payload)).action

    def press(self, bot_id: str, user: int, data: str, message_id: int, text: str = "📨 header") -> str:
        callback = {
            "id": f"cq{self._update_id}",
            "from": {"id": user, "language_code": "en"},
            "data": data,
            "message": {"message_id": message_id, "chat": {"id": user, "type": "private"}, "text": text},
        }
        return self.handle(self._envelope(bot_id, "callback_query", callback)).action

    def deliver_one(self) -> tuple[int, int]:
        """USER writes to bot A: (header id, copy id) in OWNER_A's chat."""
        assert self.message(BOT_A, USER, "hello", message_id=10) == "inbox:delivered"
        header, copy = (call for call in self.outbox.take() if call["chat"] == OWNER_A)
        return header["id"], copy["id"]


def test_the_owner_is_the_inbox() -> None:
    bot = make_bot(BOT_A, OWNER_A, "shop_bot")
    assert inbox_recipients(bot) == frozenset({OWNER_A})


def test_a_users_message_reaches_the_owner_with_the_sender_named_by_tgm_and_a_signed_block_button() -> None:
    rig = Rig()
    assert rig.message(BOT_A, USER, "hello", message_id=10) == "inbox:delivered"
    header, copy, ack = rig.outbox.take()
    assert header["chat"] == OWNER_A and header["parse_mode"] == "HTML"
    assert "<b>Ana &lt;b&gt;</b> (@ana)" in header["text"]  # the user's own name, escaped
    assert f"<code>{USER}</code>" in header["text"]
    [[button]] = header["reply_markup"]["inline_keyboard"]
    claim = rig.tokens.verify(button["callback_data"], OWNER_A, OWNER_A)
    assert claim is not None and claim.action is CallbackAction.INBOX_BLOCK and claim.bot_id == BOT_A
    assert copy == {"method": "copy", "bot": BOT_A, "chat": OWNER_A, "from": USER, "of": 10, "id": copy["id"]}
    assert ack["chat"] == USER and "delivered" in ack["text"]
    # Both messages in the owner's chat lead back to the user, and nothing else does.
    assert rig.links.user_chat(BOT_A, OWNER_A, header["id"]) == USER
    assert rig.links.user_chat(BOT_A, OWNER_A, copy["id"]) == USER
    assert rig.links.user_chat(BOT_B, OWNER_A, copy["id"]) is None


def test_any_message_is_delivered_not_only_text_and_the_acknowledgement_is_not_repeated_at_once() -> None:
    rig = Rig()
    rig.deliver_one()
    photo = [{"file_id": "AgAD", "file_unique_id": "u", "width": 1, "height": 1}]
    assert rig.message(BOT_A, USER, None, message_id=11, photo=photo) == "inbox:delivered"
    calls = rig.outbox.take()
    assert [call["method"] for call in calls] == ["send", "copy"]  # no second "delivered" so soon
    assert calls[1]["of"] == 11
    rig.clock.advance(ACK_COOLDOWN_SECONDS + 1)
    rig.message(BOT_A, USER, "again", message_id=12)
    assert [call["chat"] for call in rig.outbox.take()] == [OWNER_A, OWNER_A, USER]


def test_commands_the_bot_answers_stay_its_own_and_unknown_ones_reach_the_inbox() -> None:
    rig = Rig()
    assert rig.message(BOT_A, USER, "/price") == "command:/price"
    assert [(call["chat"], call["text"]) for call in rig.outbox.take()] == [(USER, "10")]
    assert rig.message(BOT_A, USER, "/start") == "command:/start"
    rig.outbox.take()
    assert rig.message(BOT_A, USER, "/unknown") == "inbox:delivered"


def test_nothing_is_delivered_while_the_mode_is_off_or_from_a_group() -> None:
    rig = Rig(inbox_a=False)
    assert rig.message(BOT_A, USER, "hello") == "ignored:unknown_command"
    assert rig.message(BOT_B, USER, "hello in a group", chat_id=-500) == "ignored:unknown_command"
    assert rig.outbox.take() == []


def test_the_owners_own_messages_are_not_looped_and_make_them_reachable() -> None:
    rig = Rig(inbox_a=False)
    assert not rig.links.reachable(BOT_A, OWNER_A)
    assert rig.message(BOT_A, OWNER_A, "/start") == "command:/start"  # answered as usual
    assert rig.links.reachable(BOT_A, OWNER_A) and not rig.links.reachable(BOT_B, OWNER_A)
    rig.bots.bots[BOT_A].settings.inbox_enabled = True
    rig.outbox.take()
    assert rig.message(BOT_A, OWNER_A, "a note to myself") == "inbox:admin_ignored"
    assert rig.outbox.take() == []


@pytest.mark.parametrize("replied", ["header", "copy"])
def test_the_owners_reply_goes_back_to_that_user_as_the_bot(replied: str) -> None:
    rig = Rig()
    header, copy = rig.deliver_one()
    rig.outbox.take()
    target = header if replied == "header" else copy
    assert rig.message(BOT_A, OWNER_A, "thanks!", message_id=900, reply_to=target) == "inbox:replied"
    [relayed] = rig.outbox.take()
    assert {key: relayed[key] for key in ("method", "bot", "chat", "from", "of")} == {
        "method": "copy",
        "bot": BOT_A,
        "chat": USER,
        "from": OWNER_A,
        "of": 900,
    }


def test_a_reply_to_anything_else_is_explained_whatever_its_text_claims() -> None:
    rig = Rig()
    header, _ = rig.deliver_one()
    # The replied message quotes another user's id: it is not read; only the link counts, and there is none.
    assert rig.message(BOT_A, OWNER_A, "hi", message_id=901, reply_to=header + 50) == "inbox:reply_unknown"
    [explained] = rig.outbox.take()
    assert explained["chat"] == OWNER_A and "reply to a message" in explained["text"]


def test_links_expire() -> None:
    rig = Rig()
    header, _ = rig.deliver_one()
    rig.clock.advance(8 * 24 * 3600)
    assert rig.message(BOT_A, OWNER_A, "late", message_id=902, reply_to=header) == "inbox:reply_unknown"
    assert all(call["chat"] == OWNER_A for call in rig.outbox.take())


def test_another_bots_admin_replying_in_their_own_bots_chat_reaches_nobody_of_the_first_bot() -> None:
    rig = Rig()
    header, copy = rig.deliver_one()
    # OWNER_B replies, in bot B's chat, to messages numbered as A's deliveries were (ids are per chat in Telegram).
    for target in (header, copy):
        assert rig.message(BOT_B, OWNER_B, "mine now", message_id=903, reply_to=target) == "inbox:reply_unknown"
    assert all(call["chat"] == OWNER_B and call["bot"] == BOT_B for call in rig.outbox.take())


def test_an_admin_of_two_bots_replying_in_the_other_bots_chat_reaches_nobody_of_the_first() -> None:
    rig = Rig()
    header, copy = rig.deliver_one()
    # Same admin, same private chat id, same message numbers: only the bot id tells the two inboxes apart.
    rig.message(BOT_C, OTHER_USER, "hi C", message_id=10)
    assert [call["id"] for call in rig.outbox.take() if call["chat"] == OWNER_A] == [header, copy]
    assert rig.message(BOT_C, OWNER_A, "answer", message_id=904, reply_to=header) == "inbox:replied"
    [relayed] = rig.outbox.take()
    assert relayed["bot"] == BOT_C and relayed["chat"] == OTHER_USER  # C's own user, never A's


def test_a_user_replying_to_a_message_number_of_the_owners_chat_is_just_delivered() -> None:
    rig = Rig()
    header, _ = rig.deliver_one()
    # OTHER_USER's chat has no links: their reply is an ordinary message for the inbox, not a relay to USER.
    assert rig.message(BOT_A, OTHER_USER, "hey", message_id=header, reply_to=header) == "inbox:delivered"
    assert USER not in [call["chat"] for call in rig.outbox.take()]


def test_block_from_the_header_blocks_the_sender_and_their_next_message_is_not_delivered() -> None:
    rig = Rig()
    header, _ = rig.deliver_one()
    data = rig.tokens.sign(CallbackAction.INBOX_BLOCK, BOT_A, OWNER_A, OWNER_A)
    assert rig.press(BOT_A, OWNER_A, data, header) == "inbox:blocked"
    assert rig.bots.changes == [(OWNER_A, BOT_A, BlockUser(USER, MAX_BLOCK_SECONDS))]
    answer, edit = rig.outbox.take()
    assert answer["method"] == "answer" and "blocked" in (answer["text"] or "")
    assert edit["method"] == "edit" and edit["of"] == header and edit["text"] == "📨 header"
    [[button]] = edit["reply_markup"]["inline_keyboard"]
    claim = rig.tokens.verify(button["callback_data"], OWNER_A, OWNER_A)
    assert claim is not None and claim.action is CallbackAction.INBOX_UNBLOCK
    assert rig.message(BOT_A, USER, "let me in", message_id=11) == "ignored:blocked"
    assert rig.outbox.take() == []
    # Unblock from the same place: delivered again.
    assert rig.press(BOT_A, OWNER_A, button["callback_data"], header) == "inbox:unblocked"
    assert rig.bots.changes[-1] == (OWNER_A, BOT_A, UnblockUser(USER))
    rig.outbox.take()
    assert rig.message(BOT_A, USER, "thanks", message_id=12) == "inbox:delivered"


def test_forged_or_misplaced_buttons_block_nobody() -> None:
    rig = Rig()
    header, _ = rig.deliver_one()
    good = rig.tokens.sign(CallbackAction.INBOX_BLOCK, BOT_A, OWNER_A, OWNER_A)
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    other_bots = rig.tokens.sign(CallbackAction.INBOX_BLOCK, BOT_B, OWNER_A, OWNER_A)
    forged_key = CallbackTokens(b"z" * 32, rig.clock).sign(CallbackAction.INBOX_BLOCK, BOT_A, OWNER_A, OWNER_A)
    manager_action = rig.tokens.sign(CallbackAction.DISABLE, BOT_A, OWNER_A, OWNER_A)
    for data in (tampered, other_bots, forged_key, manager_action):
        assert rig.press(BOT_A, OWNER_A, data, header) == "ignored:no_text"
    # A button signed for someone else, pressed by a user in their own chat, does not verify there either.
    assert rig.press(BOT_A, USER, good, header) == "ignored:no_text"
    # A genuine button on a message that is not a delivery (no link) is refused and said so.
    assert rig.press(BOT_A, OWNER_A, good, header + 40) == "inbox:button_refused"
    assert rig.bots.changes == []
    assert all(call["method"] == "answer" for call in rig.outbox.take())


def test_a_refused_block_changes_nothing_and_says_so() -> None:
    rig = Rig()
    header, _ = rig.deliver_one()
    data = rig.tokens.sign(CallbackAction.INBOX_BLOCK, BOT_A, OWNER_A, OWNER_A)
    rig.bots.bots[BOT_A] = replace(rig.bots.bots[BOT_A], owner_id=OWNER_B)  # ownership moved meanwhile
    assert rig.press(BOT_A, OWNER_A, data, header) == "inbox:button_refused"
    assert rig.bots.changes == []
    assert [call["method"] for call in rig.outbox.take()] == ["answer"]


def test_the_header_never_carries_markup_from_the_user() -> None:
    rig = Rig()
    rig.message(BOT_A, USER, "<a href='x'>hi</a>")
    header = rig.outbox.take()[0]
    assert not re.search(r"<a ", header["text"])  # the text travels by copy, never inside tgm's HTML


def test_a_full_admin_chat_takes_no_more_and_the_user_is_told_once() -> None:
    rig = Rig()
    limit = InboxPolicy().max_admin_backlog
    rig.backlog.waiting[(BOT_A, OWNER_A)] = limit  # minutes of deliveries already wait in the owner's chat
    assert rig.message(BOT_A, USER, "hello", message_id=10) == "inbox:busy"
    [busy] = rig.outbox.take()
    assert busy["chat"] == USER and "not delivered" in busy["text"]
    assert rig.message(BOT_A, USER, "again", message_id=11) == "inbox:busy"
    assert rig.outbox.take() == []  # told once per cooldown, not once per message
    rig.backlog.waiting[(BOT_A, OWNER_A)] = limit - 1
    assert rig.message(BOT_A, USER, "later", message_id=12) == "inbox:delivered"
