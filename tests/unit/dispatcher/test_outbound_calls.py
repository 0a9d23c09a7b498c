"""Typed outbound calls (src/tgm/domain/outbound.py) in the outbox queue (tgm.services.dispatcher.outbound.calls): the
queue's JSON is the one calls queued before the types existed (so they drain after an upgrade), each type reaches its
own Telegram method, a call that cannot be decoded is dead-lettered at once, and a call is queued under the effect id
its caller passed, so a re-run queues it once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker

from tests.unit.dispatcher.test_blocked_subscribers import OpenLimiter
from tgm.domain.bots import BotToken
from tgm.domain.effects import EffectIds, effect_id
from tgm.domain.lane import LockKeeper
from tgm.domain.outbound import (
    AnswerCallbackQuery,
    CopyMessage,
    DeleteMessage,
    EditMessageText,
    OutboundCall,
    SendDocument,
    SendMessage,
)
from tgm.domain.ports import SentMessage
from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox
from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters, InMemoryLocks
from tgm.services.dispatcher.outbound.calls import QueuedCall, method_of, refusal_notice
from tgm.services.dispatcher.outbound.drain import DrainOutbox
from tgm.services.dispatcher.outbound.queued_outbox import QueuedOutbox
from tgm.services.dispatcher.outbound.scheduling import OUTBOX_QUEUE
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore

TOKEN = BotToken("123:" + "a" * 35)
MARKUP = {"inline_keyboard": [[{"text": "ok", "callback_data": "1"}]]}


def queued(call: OutboundCall, link_chat_id: int | None = None) -> QueuedCall:
    return QueuedCall("c1", "b", call, link_chat_id)


# (queued call, its queue JSON as written by the dict-based outbox before the types)
LEGACY = [
    (
        queued(SendMessage(5, "hi", "HTML", MARKUP, True), link_chat_id=9),
        {
            "chat_id": 5,
            "method": "send_message",
            "params": {
                "text": "hi",
                "parse_mode": "HTML",
                "reply_markup": MARKUP,
                "disable_web_page_preview": True,
                "link_chat_id": 9,
            },
        },
    ),
    (
        queued(SendMessage(5, "plain")),
        {
            "chat_id": 5,
            "method": "send_message",
            "params": {"text": "plain", "parse_mode": None, "reply_markup": None, "disable_web_page_preview": False},
        },
    ),
    (
        queued(CopyMessage(5, 9, 10)),
        {
            "chat_id": 5,
            "method": "copy_message",
            "params": {"from_chat_id": 9, "message_id": 10, "reply_markup": None},
        },
    ),
    (
        queued(SendDocument(5, "s.csv", b"a,b\r\n\x00\xff", "text/csv", "📄")),
        {
            "chat_id": 5,
            "method": "send_document",
            "params": {"filename": "s.csv", "content_base64": "YSxiDQoA/w==", "mime_type": "text/csv", "caption": "📄"},
        },
    ),
    (
        queued(EditMessageText(5, 11, "edited", None, MARKUP)),
        {
            "chat_id": 5,
            "method": "edit_message_text",
            "params": {"message_id": 11, "text": "edited", "parse_mode": None, "reply_markup": MARKUP},
        },
    ),
    (
        queued(DeleteMessage(5, 12, if_refused_text="gone")),
        {"chat_id": 5, "method": "delete_message", "params": {"message_id": 12, "if_refused_text": "gone"}},
    ),
    (queued(DeleteMessage(5, 12)), {"chat_id": 5, "method": "delete_message", "params": {"message_id": 12}}),
    (
        queued(AnswerCallbackQuery("cq-1", "✅")),
        {"chat_id": None, "method": "answer_callback_query", "params": {"callback_query_id": "cq-1", "text": "✅"}},
    ),
]


def legacy_wire(shape: dict[str, Any]) -> dict[str, Any]:
    return {"id": "c1", "bot_id": "b", **shape}


@pytest.mark.parametrize(("call", "shape"), LEGACY)
def test_a_call_is_queued_as_before_and_a_call_queued_before_decodes_to_it(
    call: QueuedCall, shape: dict[str, Any]
) -> None:
    assert call.to_wire() == legacy_wire(shape)
    assert QueuedCall.from_wire(json.loads(json.dumps(legacy_wire(shape)))) == call


class RecordingSender:
    """DirectOutbox as DrainOutbox uses it: records each call it was asked to make."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, OutboundCall, BotToken | None]] = []

    def token(self, bot_id: str) -> BotToken:
        return TOKEN

    def send(self, bot_id: str, call: OutboundCall, token: BotToken | None = None) -> None:
        self.calls.append((method_of(call), call, token))


class RecordingTelegram:
    """The TelegramApi port: records which method each call reached, with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, method: str) -> Any:
        def record(*args: Any) -> SentMessage:
            self.calls.append((method, args))
            return SentMessage(1, 5)

        return record


class OneBot:
    def get_bot(self, bot_id: str) -> Any:
        return type("Bot", (), {"id": bot_id, "sealed_token": b"sealed"})()


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (SendMessage(5, "hi", "HTML", None, True), ("send_message", (SendMessage(5, "hi", "HTML", None, True),))),
        (CopyMessage(5, 9, 10, MARKUP), ("copy_message", (CopyMessage(5, 9, 10, MARKUP),))),
        (SendDocument(5, "s.csv", b"x", "text/csv"), ("send_document", (SendDocument(5, "s.csv", b"x", "text/csv"),))),
        (EditMessageText(5, 11, "t"), ("edit_message_text", (EditMessageText(5, 11, "t"),))),
        (DeleteMessage(5, 12, "gone"), ("delete_message", (5, 12))),
        (AnswerCallbackQuery("cq-1", "✅"), ("answer_callback_query", ("cq-1", "✅"))),
    ],
)
def test_each_call_type_reaches_its_own_telegram_method_with_the_opened_token(
    call: OutboundCall, expected: tuple[str, tuple[Any, ...]]
) -> None:
    telegram = RecordingTelegram()
    DirectOutbox(OneBot(), None, telegram).send("b", call, TOKEN)  # type: ignore[arg-type]
    [(method, (token, *args))] = telegram.calls
    assert (method, tuple(args)) == expected
    assert token is TOKEN


def test_only_a_delete_with_a_refusal_text_has_a_notice_and_it_goes_to_the_same_chat_under_a_derived_id() -> None:
    notice = refusal_notice(QueuedCall("c1", "b", DeleteMessage(5, 12, "gone")))
    assert notice == QueuedCall("c1:refused", "b", SendMessage(5, "gone", "HTML", None, True))
    assert refusal_notice(QueuedCall("c1", "b", DeleteMessage(5, 12))) is None
    assert refusal_notice(QueuedCall("c1", "b", SendMessage(5, "hi"))) is None


@pytest.mark.parametrize(
    "shape",
    [
        {"chat_id": 5, "method": "send_sticker", "params": {}},  # a method tgm does not send
        {"chat_id": None, "method": "send_message", "params": {"text": "hi"}},  # a chat call without its chat
        {"chat_id": 5, "method": "send_message", "params": {}},  # a parameter missing
    ],
)
def test_a_queued_call_that_cannot_be_decoded_is_dead_lettered_at_once_and_the_lane_moves_on(
    shape: dict[str, Any],
) -> None:
    store, dead, sender = InMemoryOutboxStore(), InMemoryDeadLetters(), RecordingSender()
    store.push("b", "5", json.dumps(legacy_wire(shape)).encode(), "c1")
    good = QueuedCall("c2", "b", SendMessage(5, "next"))
    store.push("b", "5", good.encode(), good.id)
    drain = DrainOutbox(store, InMemoryLocks(), OpenLimiter(), lambda: sender, dead, keeper=LockKeeper())  # type: ignore[arg-type, return-value]
    assert drain("b", "5").sent == 1
    [letter] = dead.list()
    assert (letter.kind, letter.attempts, letter.payload["id"]) == ("outbound", 1, "c1")
    assert [method for method, _, _ in sender.calls] == ["send_message"]
    assert store.size("b", "5") == 0


def test_a_call_is_queued_under_the_effect_id_its_caller_passed_so_a_rerun_queues_it_once() -> None:
    store, broker = InMemoryOutboxStore(), StubBroker()
    broker.declare_queue(OUTBOX_QUEUE)
    outbox = QueuedOutbox(store, broker)
    for _ in range(2):  # the handler ran twice (a retry after a crash): each run numbers its effects anew
        effects = EffectIds("b:7")
        outbox.send("b", SendMessage(5, "hi"), effect_id=effects.next())
        outbox.send("b", SendMessage(5, "again"), effect_id=effects.next())
    raw = store.peek("b", "5")
    assert raw is not None and json.loads(raw)["id"] == effect_id("b:7", 1)
    assert store.size("b", "5") == 2
    assert broker.queues[OUTBOX_QUEUE].qsize() == 1  # one drain for the burst
