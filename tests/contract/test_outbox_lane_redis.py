"""The OutboxLane contract on a real redis-server: the scripted lane and the one composed of RedisOutboxStore and
RedisLocks behave the same; and the coalesced push raises the lane's "drain due" flag once per burst."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from dramatiq.brokers.stub import StubBroker

from testbed.redis_server import RedisServer
from tgm.domain.ports import DeadLetter
from tgm.services.dispatcher.adapters.redis_abuse import RedisLocks, RedisSendLimiter
from tgm.services.dispatcher.dead_letters_cli import replay
from tgm.services.dispatcher.outbound.calls import QueuedCall
from tgm.services.dispatcher.outbound.outbox_lane import ComposedOutboxLane, RedisOutboxLane
from tgm.services.dispatcher.outbound.scheduling import OUTBOX_QUEUE
from tgm.services.dispatcher.outbound.send_gate import ComposedDirectSendGate, RedisDirectSendGate
from tgm.services.dispatcher.outbound.store import RedisOutboxStore

pytestmark = pytest.mark.redis

BOT, CHAT = "bot-1", "42"


def call(call_id: str) -> bytes:
    return json.dumps({"id": call_id, "bot_id": BOT, "chat_id": 42, "method": "send_message", "params": {}}).encode()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    c.flushdb()
    yield c
    c.close()


@pytest.fixture
def store(client: redis.Redis) -> RedisOutboxStore:
    return RedisOutboxStore(client)


@pytest.fixture(params=["scripted", "composed"])
def lane(request: pytest.FixtureRequest, client: redis.Redis, store: RedisOutboxStore) -> Any:
    if request.param == "scripted":
        return RedisOutboxLane(client)
    return ComposedOutboxLane(store, RedisLocks(client))


def test_push_and_mark_asks_for_one_drain_per_burst_and_pushes_each_call_once(store: RedisOutboxStore) -> None:
    assert store.push_and_mark(BOT, CHAT, call("a"), "a") == (True, True)
    assert store.push_and_mark(BOT, CHAT, call("b"), "b") == (True, False)
    assert store.push_and_mark(BOT, CHAT, call("a"), "a") == (False, False)  # a re-run's copy
    store.clear_drain_pending(BOT, CHAT)
    assert store.push_and_mark(BOT, CHAT, call("c"), "c") == (True, True)
    assert store.size(BOT, CHAT) == 3


def test_claim_clears_the_flag_and_reports_sent_calls(lane: Any, store: RedisOutboxStore) -> None:
    store.push_and_mark(BOT, CHAT, call("a"), "a")
    store.mark_sent("a")
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    assert claim is not None and claim.items[0] == (call("a"), True)
    assert store.push_and_mark(BOT, CHAT, call("b"), "b") == (True, True), "the claim cleared the flag"


def test_a_held_lane_cannot_be_claimed(lane: Any, store: RedisOutboxStore) -> None:
    store.push(BOT, CHAT, call("a"), "a")
    first = lane.claim(BOT, CHAT, 5.0, 20)
    assert lane.claim(BOT, CHAT, 5.0, 20) is None
    assert lane.release(BOT, CHAT, first.owner) == 1
    assert lane.claim(BOT, CHAT, 5.0, 20) is not None


def test_complete_marks_sent_pops_and_clears_failures(lane: Any, store: RedisOutboxStore) -> None:
    store.push(BOT, CHAT, call("a"), "a")
    store.push(BOT, CHAT, call("b"), "b")
    store.record_failure("a")
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    assert claim.items[0] == (call("a"), False)
    assert lane.complete(BOT, CHAT, claim.owner, call("a"), "a", sent=True, ttl_seconds=5.0)
    assert store.is_sent("a") and store.peek(BOT, CHAT) == call("b")
    assert store.record_failure("a") == 1, "failures of a completed call start again from zero"
    assert lane.release(BOT, CHAT, claim.owner) == 1


def test_complete_without_the_lock_changes_nothing(lane: Any, client: redis.Redis, store: RedisOutboxStore) -> None:
    store.push(BOT, CHAT, call("a"), "a")
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    client.set("tgm:lock:obox:bot-1:42", "someone-else")
    assert not lane.complete(BOT, CHAT, claim.owner, call("a"), "a", sent=True, ttl_seconds=5.0)
    assert not store.is_sent("a") and store.size(BOT, CHAT) == 1
    lane.release(BOT, CHAT, claim.owner)
    assert client.get("tgm:lock:obox:bot-1:42") == b"someone-else"


def test_a_malformed_call_can_be_completed_away(lane: Any, client: redis.Redis, store: RedisOutboxStore) -> None:
    client.rpush("tgm:obox:bot-1:42", b"{broken")
    claim = lane.claim(BOT, CHAT, 5.0, 20)
    assert claim.items == ((b"{broken", False),)
    assert lane.complete(BOT, CHAT, claim.owner, b"{broken", None, sent=False, ttl_seconds=5.0)
    assert lane.release(BOT, CHAT, claim.owner) == 0


@pytest.fixture(params=["scripted", "composed"])
def gate(request: pytest.FixtureRequest, client: redis.Redis, store: RedisOutboxStore) -> Any:
    limiter = RedisSendLimiter(client, per_bot_per_second=30, per_chat_per_second=1)
    if request.param == "scripted":
        return RedisDirectSendGate(client, limiter)
    return ComposedDirectSendGate(store, limiter)


def test_the_direct_gate_opens_once_per_chat_slot(gate: Any) -> None:
    assert gate.open(BOT, CHAT, 42, "a")
    assert not gate.open(BOT, CHAT, 42, "b"), "1 message/s per private chat: the second must wait"
    assert gate.open(BOT, "43", 43, "c"), "another chat has its own slot"


def test_the_direct_gate_stays_shut_behind_queued_calls_and_for_sent_ones(gate: Any, store: RedisOutboxStore) -> None:
    store.push(BOT, CHAT, call("old"), "old")
    assert not gate.open(BOT, CHAT, 42, "new"), "a call queued earlier on the lane goes first"
    store.mark_sent("again")
    assert not gate.open(BOT, "43", 43, "again"), "sent by an earlier run of the same update"
    assert gate.open(BOT, "43", 43, "fresh")


@pytest.mark.parametrize(
    ("payload", "chat_key"),
    [
        ({"chat_id": 42, "method": "send_message", "params": {"text": "hi", "parse_mode": None}}, CHAT),
        ({"chat_id": None, "method": "answer_callback_query", "params": {"callback_query_id": "q"}}, "cbq"),
    ],
)
def test_a_replayed_outbound_dead_letter_is_queued_again_under_a_fresh_id_in_its_lane(
    client: redis.Redis, store: RedisOutboxStore, payload: dict[str, Any], chat_key: str
) -> None:
    broker = StubBroker()
    broker.declare_queue(OUTBOX_QUEUE)
    letter = DeadLetter("dl-1", "outbound", "Bad Request", 1, 0.0, 0.0, {"id": "old", "bot_id": BOT, **payload})
    replay(letter, client, broker)
    raw = store.peek(BOT, chat_key)
    assert raw is not None
    queued = json.loads(raw)
    assert queued["id"] != "old" and store.push(BOT, chat_key, raw, queued["id"]) is False  # marked queued once
    assert QueuedCall.from_wire(queued).call == QueuedCall.from_wire(letter.payload).call
    assert broker.queues[OUTBOX_QUEUE].qsize() == 1
