"""Inbox deliveries are linked to their user once Telegram numbered them (issue 15): by the queued drain and by a
direct send alike, with the number Telegram returned (copyMessage answers a MessageId); a refused send links nothing,
and an ordinary send never does. The queue carries ids only, never the token."""

from __future__ import annotations

from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker

from tests.unit.dispatcher.test_actors import make_bot
from tests.unit.dispatcher.test_blocked_subscribers import OpenGate, OpenLimiter
from tests.unit.dispatcher.test_direct_outbox_token_cache import TOKEN, Bots, CountingVault
from tgm.domain.bots import BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.effects import EffectIds
from tgm.domain.errors import TelegramRequestFailed
from tgm.domain.lane import LockKeeper
from tgm.domain.outbound import CopyMessage, SendMessage
from tgm.domain.ports import SentMessage
from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox
from tgm.services.dispatcher.adapters.inbox_links import InMemoryInboxLinks
from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters, InMemoryLocks
from tgm.services.dispatcher.outbound.calls import QueuedCall
from tgm.services.dispatcher.outbound.direct_send import DirectSend, DirectSendOutcome
from tgm.services.dispatcher.outbound.drain import DrainOutbox
from tgm.services.dispatcher.outbound.queued_outbox import QueuedOutbox, collecting_lanes
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore

ADMIN, USER = 7, 42


class NumberingTelegram:
    """Telegram as the inbox uses it: each message in a chat gets the next number; `refuse` fails every call."""

    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse = refuse
        self.calls: list[tuple[str, int, Any]] = []
        self._next = 300

    def _number(self, method: str, chat_id: int, detail: Any) -> SentMessage:
        if self.refuse is not None:
            raise self.refuse
        self._next += 1
        self.calls.append((method, chat_id, detail))
        return SentMessage(message_id=self._next, chat_id=chat_id)

    def send_message(self, token: BotToken, message: SendMessage) -> SentMessage:
        assert token.reveal() == TOKEN
        return self._number("send", message.chat_id, message.text)

    def copy_message(self, token: BotToken, copy: CopyMessage) -> SentMessage:
        assert token.reveal() == TOKEN
        return self._number("copy", copy.chat_id, (copy.from_chat_id, copy.message_id))


def queue_delivery(outbox: QueuedOutbox, bot_id: str) -> set[tuple[str, str]]:
    effects = EffectIds("bot-1:update-1")
    with collecting_lanes() as lanes:  # as in a chat drain's handler
        header = SendMessage(ADMIN, "📨 header", parse_mode="HTML")
        outbox.send(bot_id, header, effect_id=effects.next(), link_chat_id=USER)
        outbox.send(bot_id, CopyMessage(ADMIN, USER, 10), effect_id=effects.next(), link_chat_id=USER)
        outbox.send(bot_id, SendMessage(ADMIN, "not an inbox delivery"), effect_id=effects.next())
    return lanes


def test_the_drain_links_each_delivery_to_the_number_telegram_gave_it() -> None:
    store, links, telegram = InMemoryOutboxStore(), InMemoryInboxLinks(), NumberingTelegram()
    bot = make_bot()
    sender = DirectOutbox(Bots(bot), CountingVault(), telegram, ManualClock())  # type: ignore[arg-type]
    [(bot_id, chat_key)] = queue_delivery(QueuedOutbox(store, StubBroker()), bot.id)
    raw = store.peek(bot_id, chat_key)
    assert raw is not None and TOKEN.encode() not in raw
    drain = DrainOutbox(
        store,
        InMemoryLocks(),
        OpenLimiter(),
        lambda: sender,
        InMemoryDeadLetters(),
        links=links,  # type: ignore[arg-type]
        keeper=LockKeeper(),  # nothing runs it: the work here ends within the lock's TTL
    )
    assert drain(bot_id, chat_key).sent == 3
    assert telegram.calls == [
        ("send", ADMIN, "📨 header"),
        ("copy", ADMIN, (USER, 10)),
        ("send", ADMIN, "not an inbox delivery"),
    ]
    assert [links.user_chat(bot.id, ADMIN, n) for n in (301, 302, 303)] == [USER, USER, None]
    assert links.user_chat("another-bot", ADMIN, 301) is None


@pytest.mark.parametrize("refuse", [None, TelegramRequestFailed(400, "Bad Request: chat not found")])
def test_a_direct_send_links_what_it_sent_and_nothing_it_could_not_send(refuse: Exception | None) -> None:
    store, links, telegram = InMemoryOutboxStore(), InMemoryInboxLinks(), NumberingTelegram(refuse)
    bot = make_bot()
    sender = DirectOutbox(Bots(bot), CountingVault(), telegram, ManualClock())  # type: ignore[arg-type]
    direct = DirectSend(
        OpenGate(),
        store,
        lambda: sender,
        InMemoryDeadLetters(),
        OpenLimiter(),
        links=links,  # type: ignore[arg-type]
    )
    call = {
        "id": "c1",
        "bot_id": bot.id,
        "chat_id": ADMIN,
        "method": "copy_message",
        "params": {"from_chat_id": USER, "message_id": 10, "reply_markup": None, "link_chat_id": USER},
    }
    outcome = direct(QueuedCall.from_wire(call))
    if refuse is None:
        assert outcome == DirectSendOutcome.SENT and links.user_chat(bot.id, ADMIN, 301) == USER
    else:
        assert outcome == DirectSendOutcome.REFUSED and links.user_chat(bot.id, ADMIN, 301) is None
