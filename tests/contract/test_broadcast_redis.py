"""Broadcasts (issue 15): the BroadcastStore and the broadcast's send slots, on Redis and in memory, one contract."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.domain.broadcast import Broadcast, BroadcastState, Outcome, StartResult
from tgm.services.dispatcher.adapters import memory
from tgm.services.dispatcher.adapters.broadcasts import (
    FINISHED_TTL_SECONDS,
    InMemoryBroadcastStore,
    RedisBroadcastStore,
)
from tgm.services.dispatcher.adapters.redis_abuse import RedisSendLimiter

pytestmark = pytest.mark.redis
FIRST = "5e0c3a52-3c1f-4a8e-9f5e-2a6b1c7d8e90"
SECOND = "6f1d4b63-4d2f-4b9f-8a6f-3b7c2d8e9fa1"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    c.flushdb()
    yield c
    c.close()


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest, client: redis.Redis) -> Any:
    return RedisBroadcastStore(client) if request.param == "redis" else InMemoryBroadcastStore()


def draft(broadcast_id: str = FIRST, bot_id: str = "bot-1") -> Broadcast:
    return Broadcast(broadcast_id, bot_id, 501, 502, "mgr", "shop_bot", "en", "<b>Sale</b> ✨")


def test_a_draft_round_trips_and_starts_once(store: Any) -> None:
    store.create(draft(), 600)
    assert store.get(FIRST) == draft()
    assert store.get(SECOND) is None
    assert store.start(FIRST, 77, 1000, 1234.5) is StartResult.STARTED
    running = store.get(FIRST)
    assert (running.state, running.message_id, running.total, running.started_at) == (
        BroadcastState.RUNNING,
        77,
        1000,
        1234.5,
    )
    assert store.start(FIRST, 78, 1, 0.0) is StartResult.GONE  # a second confirm press
    assert store.start(SECOND, 78, 1, 0.0) is StartResult.GONE  # unknown
    assert store.running_for("bot-1") == FIRST


def test_one_running_broadcast_per_bot_until_it_finishes(store: Any) -> None:
    store.create(draft(FIRST), 600)
    store.create(draft(SECOND), 600)
    assert store.start(FIRST, 1, 1, 0.0) is StartResult.STARTED
    assert store.start(SECOND, 2, 1, 0.0) is StartResult.BUSY
    store.finish(FIRST, BroadcastState.DONE, 99.0)
    assert store.get(FIRST).state is BroadcastState.DONE and store.get(FIRST).finished_at == 99.0
    assert store.running_for("bot-1") is None
    assert store.start(SECOND, 2, 1, 0.0) is StartResult.STARTED
    store.finish(FIRST, BroadcastState.CANCELLED, 100.0)  # finished stays finished
    assert store.get(FIRST).state is BroadcastState.DONE


def test_claims_settle_once_and_move_the_cursor(store: Any) -> None:
    store.create(draft(), 600)
    store.start(FIRST, 1, 5, 0.0)
    assert store.claim(FIRST, 10) is None
    assert store.claim(FIRST, 10) is Outcome.SENDING  # a dead runner's claim is visible to the next one
    store.settle(FIRST, 10, Outcome.SENT)
    store.settle(FIRST, 10, Outcome.SENT)  # counted once
    assert store.claim(FIRST, 12) is None
    store.settle(FIRST, 12, Outcome.BLOCKED)
    assert store.claim(FIRST, 11) is None
    store.settle(FIRST, 11, Outcome.FAILED)
    store.settle(FIRST, 13, Outcome.SENT)  # never claimed: ignored
    current = store.get(FIRST)
    assert (current.sent, current.blocked, current.failed, current.cursor, current.remaining) == (1, 1, 1, 12, 2)
    assert store.claim(FIRST, 10) is Outcome.SENT and store.claim(FIRST, 12) is Outcome.BLOCKED
    assert store.claim(FIRST, 20) is None
    store.release(FIRST, 20)  # a 429: not sent, tried again
    assert store.claim(FIRST, 20) is None
    store.release(FIRST, 10)  # a settled mark is never released
    assert store.claim(FIRST, 10) is Outcome.SENT
    store.advance(FIRST, 30)
    store.advance(FIRST, 25)
    assert store.get(FIRST).cursor == 30


def test_cancel_discards_a_draft_and_flags_a_running_broadcast(store: Any) -> None:
    store.create(draft(FIRST), 600)
    assert store.request_cancel(FIRST, 5.0)
    assert store.get(FIRST).state is BroadcastState.CANCELLED
    assert store.start(FIRST, 1, 1, 0.0) is StartResult.GONE  # a stale confirm after the cancel
    store.create(draft(SECOND), 600)
    store.start(SECOND, 1, 1, 0.0)
    assert store.request_cancel(SECOND, 6.0)
    flagged = store.get(SECOND)
    assert flagged.state is BroadcastState.RUNNING and flagged.cancel_requested
    store.finish(SECOND, BroadcastState.CANCELLED, 7.0)
    assert not store.request_cancel(SECOND, 8.0)
    assert not store.request_cancel("4b1c2d3e-0000-4000-8000-000000000000", 8.0)


def test_progress_is_due_once_per_interval(store: Any) -> None:
    assert store.progress_due(FIRST, 0.2)
    assert not store.progress_due(FIRST, 0.2)
    assert store.progress_due(SECOND, 0.2)
    deadline = time.monotonic() + 5
    while not store.progress_due(FIRST, 0.2):
        assert time.monotonic() < deadline, "never due again"
        time.sleep(0.02)


def test_a_running_key_left_without_its_broadcast_does_not_block_the_bot(client: redis.Redis) -> None:
    store = RedisBroadcastStore(client)
    store.create(draft(FIRST), 600)
    store.start(FIRST, 1, 1, 0.0)
    client.delete(f"tgm:bc:{FIRST}")  # the record lost (e.g. an operator's cleanup), its bot key left behind
    assert store.running_for("bot-1") is None
    store.create(draft(SECOND), 600)
    assert store.start(SECOND, 2, 1, 0.0) is StartResult.STARTED
    assert store.running_for("bot-1") == SECOND


def test_redis_keys_lapse_a_draft_and_keep_a_finished_broadcast_a_while(client: redis.Redis) -> None:
    store = RedisBroadcastStore(client)
    store.create(draft(FIRST), 600)
    assert 0 < client.ttl(f"tgm:bc:{FIRST}") <= 600
    store.start(FIRST, 1, 1, 0.0)
    assert client.ttl(f"tgm:bc:{FIRST}") == -1  # running: kept until it finishes
    store.claim(FIRST, 9)
    store.finish(FIRST, BroadcastState.DONE, 1.0)
    for key in (f"tgm:bc:{FIRST}", f"tgm:bc-marks:{FIRST}"):
        assert FINISHED_TTL_SECONDS - 60 < client.ttl(key) <= FINISHED_TTL_SECONDS
    assert not client.exists("tgm:bc-bot:bot-1")


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_a_broadcast_slot_needs_headroom_over_the_replies_reserve(kind: str, client: redis.Redis) -> None:
    if kind == "redis":
        limiter: Any = RedisSendLimiter(client, per_bot_per_second=8, margin=0.0, reserved_for_replies=6)
    else:
        limiter = memory.InMemorySendLimiter(per_bot_per_second=8, margin=0.0, reserved_for_replies=6)
    assert limiter.acquire("bot", 1) == 0 and limiter.acquire("bot", 2) == 0  # replies: 2 of 8 in this second
    deadline = time.monotonic() + 5
    while limiter.acquire("bot", 3) > 0:  # a third reply, once the smoothing window let the first two age
        assert time.monotonic() < deadline, "the reply never got a slot"
        time.sleep(0.02)
    # 3 of 8 used: no headroom for a broadcast over the 6 reserved for replies, though a reply would get one.
    assert limiter.acquire_spare("bot", 4) > 0
    assert limiter.acquire_spare("other-bot", 5) == 0  # another bot: its own budget
    assert limiter.acquire_spare("other-bot", 6) > 0  # whose broadcast takes 8 - 6 per second, smoothed
