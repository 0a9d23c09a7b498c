"""The gateway's one-round-trip enqueue (RedisUpdateQueue) against a real redis-server and Dramatiq's consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import dramatiq
import pytest
import redis
import redis.asyncio
from dramatiq.brokers.redis import RedisBroker

from testbed.redis_server import RedisServer
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.mailbox import RedisChatMailbox, decode
from tgm.messaging.update_queue import (
    DRAIN_CHAT_ACTOR,
    UPDATES_QUEUE,
    RedisUpdateQueue,
    drain_chat_message,
    encoded_drain_chat_message,
)

pytestmark = pytest.mark.redis


def envelope(update_id: int, chat_id: int = 42, bot_id: str = "bot-1", text: str = "/start") -> UpdateEnvelope:
    update = {"update_id": update_id, "message": {"message_id": update_id, "chat": {"id": chat_id}, "text": text}}
    return UpdateEnvelope(bot_id, update_id, 1.5, f"req-{update_id}", update)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    c.flushdb()
    c.script_flush()
    yield c
    c.close()


def run(redis_url: str, *envelopes: UpdateEnvelope, max_items: int = 500) -> list[bool]:
    """Enqueues all envelopes concurrently (one event-loop turn: they share one pipeline)."""

    async def scenario() -> list[bool]:
        queue = RedisUpdateQueue(redis.asyncio.Redis.from_url(redis_url), max_items=max_items)
        try:
            return list(await asyncio.gather(*(queue.enqueue(item) for item in envelopes)))
        finally:
            await queue.close()

    return asyncio.run(scenario())


def drain_messages(redis_url: str) -> list[dramatiq.Message[None]]:
    """What Dramatiq's own Redis consumer fetches from the updates queue."""
    broker = RedisBroker(url=redis_url)
    broker.declare_queue(UPDATES_QUEUE)
    consumer = broker.consume(UPDATES_QUEUE, prefetch=100, timeout=50)
    fetched: list[dramatiq.Message[None]] = []
    try:
        for _ in range(5):  # a few polls: the consumer fetches in batches, then yields None when empty
            proxy = next(consumer)
            if proxy is not None:
                fetched.append(proxy._message)
                consumer.ack(proxy)
    finally:
        consumer.close()
        broker.close()
    return fetched


def test_the_hand_made_message_is_what_dramatiq_would_store() -> None:
    message_id, raw = encoded_drain_chat_message("bot-1", "42", "req-1")
    decoded = dramatiq.Message.decode(raw)
    reference = drain_chat_message("bot-1", "42", "req-1")
    assert decoded.message_id == message_id
    assert (decoded.queue_name, decoded.actor_name, decoded.args, decoded.kwargs) == (
        reference.queue_name,
        reference.actor_name,
        reference.args,
        reference.kwargs,
    )
    assert decoded.options == {"request_id": "req-1", "redis_message_id": message_id}


def test_one_update_is_in_its_mailbox_and_dramatiq_consumes_one_drain(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    assert run(redis_server.url, envelope(1)) == [True]
    item = RedisChatMailbox(client).peek("bot-1", "42")
    assert item is not None and item.envelope == envelope(1)
    messages = drain_messages(redis_server.url)
    assert [(m.actor_name, m.args) for m in messages] == [(DRAIN_CHAT_ACTOR, ("bot-1", "42"))]


def test_a_burst_to_one_chat_keeps_order_and_schedules_one_drain(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    burst = [envelope(n) for n in range(1, 51)]
    assert run(redis_server.url, *burst) == [True] * 50
    raw = client.lrange("tgm:mbox:bot-1:42", 0, -1)
    assert [decode(bytes(item)).envelope for item in raw] == burst
    assert len(drain_messages(redis_server.url)) == 1


def test_a_started_drain_lets_the_next_update_schedule_another(client: redis.Redis, redis_server: RedisServer) -> None:
    run(redis_server.url, envelope(1))
    run(redis_server.url, envelope(2))  # a drain is due: no second message
    RedisChatMailbox(client).clear_drain_pending("bot-1", "42")  # what DrainChat does first
    run(redis_server.url, envelope(3))
    assert len(drain_messages(redis_server.url)) == 2


def test_chats_and_bots_get_their_own_drains(client: redis.Redis, redis_server: RedisServer) -> None:
    run(redis_server.url, envelope(1, chat_id=1), envelope(2, chat_id=2), envelope(3, chat_id=1, bot_id="bot-2"))
    args = sorted(m.args for m in drain_messages(redis_server.url))
    assert args == [("bot-1", "1"), ("bot-1", "2"), ("bot-2", "1")]


def test_a_full_mailbox_drops_the_update_and_stores_nothing(client: redis.Redis, redis_server: RedisServer) -> None:
    assert run(redis_server.url, envelope(1), envelope(2), max_items=2) == [True, True]
    assert run(redis_server.url, envelope(3), max_items=2) == [False]
    assert client.llen("tgm:mbox:bot-1:42") == 2


def test_works_after_redis_forgot_its_scripts(client: redis.Redis, redis_server: RedisServer) -> None:
    run(redis_server.url, envelope(1, chat_id=1))
    client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    assert run(redis_server.url, envelope(2, chat_id=2), envelope(3, chat_id=3)) == [True, True]
    assert client.llen("tgm:mbox:bot-1:2") == 1 and client.llen("tgm:mbox:bot-1:3") == 1


def test_text_with_a_lone_surrogate_round_trips(client: redis.Redis, redis_server: RedisServer) -> None:
    odd = envelope(1, text="before \ud800 after")
    assert run(redis_server.url, odd) == [True]
    item = RedisChatMailbox(client).peek("bot-1", "42")
    assert item is not None and item.envelope == odd


def test_an_unreachable_redis_raises_for_every_caller() -> None:
    with pytest.raises(redis.exceptions.ConnectionError):
        run("redis://127.0.0.1:1/0", envelope(1), envelope(2))
