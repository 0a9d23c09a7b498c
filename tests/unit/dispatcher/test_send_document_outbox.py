"""A document (the subscribers' CSV) goes through the queued outbox like any call: queued with its bytes, drained,
sent with the bot's token opened at that moment, byte for byte."""

from __future__ import annotations

from typing import Any

from dramatiq.brokers.stub import StubBroker

from tests.unit.dispatcher.test_actors import make_bot
from tests.unit.dispatcher.test_blocked_subscribers import OpenLimiter
from tests.unit.dispatcher.test_direct_outbox_token_cache import TOKEN, Bots, CountingVault
from tgm.domain.bots import BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.effects import EffectIds
from tgm.domain.lane import LockKeeper
from tgm.domain.outbound import SendDocument
from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox
from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters, InMemoryLocks
from tgm.services.dispatcher.outbound.drain import DrainOutbox
from tgm.services.dispatcher.outbound.queued_outbox import QueuedOutbox, collecting_lanes
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore

CONTENT = b"telegram_user_id,first_seen\r\n7,2026-01-01T00:00:00Z\r\n\x00\xff"


class DocumentTelegram:
    def __init__(self) -> None:
        self.documents: list[tuple[str, int, str, bytes, str, str]] = []

    def send_document(self, token: BotToken, document: SendDocument) -> Any:
        d = document
        self.documents.append((token.reveal(), d.chat_id, d.filename, d.content, d.mime_type, d.caption))


def test_a_queued_document_is_sent_byte_for_byte_with_the_bots_token() -> None:
    store, telegram, dead = InMemoryOutboxStore(), DocumentTelegram(), InMemoryDeadLetters()
    bot = make_bot()
    sender = DirectOutbox(Bots(bot), CountingVault(), telegram, ManualClock())  # type: ignore[arg-type]
    outbox = QueuedOutbox(store, StubBroker())
    with collecting_lanes() as lanes:  # as in a chat drain's handler
        document = SendDocument(42, "subscribers.csv", CONTENT, mime_type="text/csv", caption="📄")
        outbox.send(bot.id, document, effect_id=EffectIds("bot-1:update-1").next())
    [(bot_id, chat_key)] = lanes
    queued = store.peek(bot_id, chat_key)
    assert queued is not None and TOKEN.encode() not in queued  # the queue never holds the token
    drain = DrainOutbox(store, InMemoryLocks(), OpenLimiter(), lambda: sender, dead, keeper=LockKeeper())  # type: ignore[arg-type]
    assert drain(bot_id, chat_key).sent == 1
    assert telegram.documents == [(TOKEN, 42, "subscribers.csv", CONTENT, "text/csv", "📄")]
    assert dead.list() == []
