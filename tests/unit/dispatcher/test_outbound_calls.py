"""Typed outbound calls (tgm.services.dispatcher.outbound.calls): the queue's JSON is the one calls queued before the
types existed (so they drain after an upgrade), each type reaches its own DirectOutbox method, a call that cannot
be decoded is dead-lettered at once, and a call made outside any effect scope is refused instead of queued under a
random id."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker

from tests.unit.dispatcher.test_blocked_subscribers import OpenLimiter
from tgm.domain.bots import BotToken
from tgm.domain.effects import NoEffectScope, effect_id, effect_scope
from tgm.domain.lane import LockKeeper
from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters, InMemoryLocks
from tgm.services.dispatcher.outbound.calls import (
    AnswerCallbackQuery,
    CopyMessage,
    DeleteMessage,
    EditMessageText,
    OutboundCall,
    QueuedCall,
    SendDocument,
    SendMessage,
    refusal_notice,
)
from tgm.services.dispatcher.outbound.drain import DrainOutbox
from tgm.services.dispatcher.outbound.queued_outbox import QueuedOutbox
from tgm.services.dispatcher.outbound.scheduling import OUTBOX_QUEUE
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore

TOKEN = BotToken("123:" + "a" * 35)
MARKUP = {"inline_keyboard": [[{"text": "ok", "callback_data": "1"}]]}

# (typed call, its queue JSON as written by the dict-based outbox before the types)
LEGACY = [
    (
        SendMessage(5, "hi", "HTML", MARKUP, True, link_chat_id=9),
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
        SendMessage(5, "plain"),
        {
            "chat_id": 5,
            "method": "send_message",
            "params": {"text": "plain", "parse_mode": None, "reply_markup": None, "disable_web_page_preview": False},
        },
    ),
    (
        CopyMessage(5, 9, 10),
        {
            "chat_id": 5,
            "method": "copy_message",
            "params": {"from_chat_id": 9, "message_id": 10, "reply_markup": None},
        },
    ),
    (
        SendDocument(5, "s.csv", b"a,b\r\n\x00\xff", "text/csv", "📄"),
        {
            "chat_id": 5,
            "method": "send_document",
            "params": {"filename": "s.csv", "content_base64": "YSxiDQoA/w==", "mime_type": "text/csv", "caption": "📄"},
        },
    ),
    (
        EditMessageText(5, 11, "edited", None, MARKUP),
        {
            "chat_id": 5,
            "method": "edit_message_text",
            "params": {"message_id": 11, "text": "edited", "parse_mode": None, "reply_markup": MARKUP},
        },
    ),
    (
        DeleteMessage(5, 12, if_refused_text="gone"),
        {"chat_id": 5, "method": "delete_message", "params": {"message_id": 12, "if_refused_text": "gone"}},
    ),
    (DeleteMessage(5, 12), {"chat_id": 5, "method": "delete_message", "params": {"message_id": 12}}),
    (
        AnswerCallbackQuery("cq-1", "✅"),
        {"chat_id": None, "method": "answer_callback_query", "params": {"callback_query_id": "cq-1", "text": "✅"}},
    ),
]


def legacy_wire(shape: dict[str, Any]) -> dict[str, Any]:
    return {"id": "c1", "bot_id": "b", **shape}


@pytest.mark.parametrize(("call", "shape"), LEGACY)
def test_a_call_is_queued_as_before_and_a_call_queued_before_decodes_to_it(
    call: OutboundCall, shape: dict[str, Any]
) -> None:
    assert QueuedCall("c1", "b", call).to_wire() == legacy_wire(shape)
    assert QueuedCall.from_wire(json.loads(json.dumps(legacy_wire(shape)))) == QueuedCall("c1", "b", call)


class RecordingSender:
    """DirectOutbox as the calls use it: records which method each call reached, with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def token(self, bot_id: str) -> BotToken:
        return TOKEN

    def __getattr__(self, method: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((method, args, kwargs))

        return record


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            SendMessage(5, "hi", "HTML", None, True),
            ("send_message", ("b", 5, "hi"), {"parse_mode": "HTML", "reply_markup": None}),
        ),
        (CopyMessage(5, 9, 10, MARKUP), ("copy_message", ("b", 5, 9, 10), {"reply_markup": MARKUP})),
        (SendDocument(5, "s.csv", b"x", "text/csv"), ("send_document", ("b", 5, "s.csv", b"x"), {"caption": ""})),
        (EditMessageText(5, 11, "t"), ("edit_message_text", ("b", 5, 11, "t"), {"parse_mode": None})),
        (DeleteMessage(5, 12, "gone"), ("delete_message", ("b", 5, 12), {})),
        (AnswerCallbackQuery("cq-1", "✅"), ("answer_callback_query", ("b", "cq-1", "✅"), {})),
    ],
)
def test_each_call_type_reaches_its_own_telegram_method_with_the_opened_token(
    call: OutboundCall, expected: tuple[str, tuple[Any, ...], dict[str, Any]]
) -> None:
    sender = RecordingSender()
    call.send(sender, "b", TOKEN)  # type: ignore[arg-type]
    [(method, args, kwargs)] = sender.calls
    assert (method, args) == expected[:2]
    assert kwargs["token"] is TOKEN
    assert expected[2].items() <= kwargs.items()


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


def test_a_call_outside_any_effect_scope_is_refused_and_nothing_is_queued() -> None:
    store = InMemoryOutboxStore()
    outbox = QueuedOutbox(store, StubBroker())
    with pytest.raises(NoEffectScope):
        outbox.send_message("b", 5, "hi")
    assert store.size("b", "5") == 0


def test_a_call_in_a_scope_is_queued_under_the_scopes_next_effect_id_so_a_rerun_queues_it_once() -> None:
    store, broker = InMemoryOutboxStore(), StubBroker()
    broker.declare_queue(OUTBOX_QUEUE)
    outbox = QueuedOutbox(store, broker)
    for _ in range(2):  # the handler ran twice (a retry after a crash)
        with effect_scope("b:7"):
            outbox.send_message("b", 5, "hi")
    raw = store.peek("b", "5")
    assert raw is not None and json.loads(raw)["id"] == effect_id("b:7", 1)
    assert store.size("b", "5") == 1
    assert broker.queues[OUTBOX_QUEUE].qsize() == 1  # one drain for the burst
