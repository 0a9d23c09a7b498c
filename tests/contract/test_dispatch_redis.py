"""Dispatcher adapters against a real redis-server: the deduplicator contract and the queue round trip."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest
import redis
from dependency_injector import providers
from dramatiq.brokers.redis import RedisBroker

from testbed.redis_server import RedisServer
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.mailbox import RedisChatMailbox
from tgm.messaging.update_queue import MailboxUpdateQueue
from tgm.services.dispatcher.adapters.memory import InMemoryUpdateDeduplicator
from tgm.services.dispatcher.adapters.redis_dedup import RedisUpdateDeduplicator
from tgm.services.dispatcher.container import DispatcherContainer
from tgm.services.dispatcher.settings import DispatcherSettings
from tgm.services.dispatcher.workers.actors import register_actors

pytestmark = pytest.mark.redis


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    c.flushdb()
    yield c
    c.close()


@pytest.fixture(params=["redis", "memory"])
def dedup(request: pytest.FixtureRequest, client: redis.Redis) -> Any:
    if request.param == "redis":
        return RedisUpdateDeduplicator(client, ttl_seconds=3600, prefix=f"test:{uuid.uuid4().hex}")
    return InMemoryUpdateDeduplicator(ttl_seconds=3600)


def test_dedup_contract_unmarked_is_not_done(dedup: Any) -> None:
    assert not dedup.already_done("bot-1", 1)


def test_dedup_contract_marked_is_done_per_bot_and_update(dedup: Any) -> None:
    dedup.mark_done("bot-1", 1)
    assert dedup.already_done("bot-1", 1)
    assert not dedup.already_done("bot-1", 2)
    assert not dedup.already_done("bot-2", 1)


def test_dedup_contract_marking_twice_is_harmless(dedup: Any) -> None:
    dedup.mark_done("bot-1", 1)
    dedup.mark_done("bot-1", 1)
    assert dedup.already_done("bot-1", 1)


def test_redis_dedup_keys_expire_after_a_day(client: redis.Redis) -> None:
    d = RedisUpdateDeduplicator(client)
    d.mark_done("bot-9", 77)
    keys = client.keys("tgm:dedup:update:bot-9:77")
    assert len(keys) == 1
    assert 24 * 3600 - 60 <= client.ttl(keys[0]) <= 24 * 3600


def test_redis_dedup_is_shared_between_clients(redis_server: RedisServer, client: redis.Redis) -> None:
    other = redis.Redis.from_url(redis_server.url)
    try:
        RedisUpdateDeduplicator(client).mark_done("bot-3", 5)
        assert RedisUpdateDeduplicator(other).already_done("bot-3", 5)
    finally:
        other.close()


def test_envelope_enqueued_on_redis_is_handled_by_a_worker(redis_server: RedisServer, client: redis.Redis) -> None:
    namespace = f"tgm-test-{uuid.uuid4().hex}"
    seen: list[UpdateEnvelope] = []
    lock = threading.Lock()

    def handler(envelope: UpdateEnvelope) -> None:
        with lock:
            seen.append(envelope)

    consumer_broker = RedisBroker(url=redis_server.url, namespace=namespace)
    producer_broker = RedisBroker(url=redis_server.url, namespace=namespace)  # like a separate gateway process
    container = DispatcherContainer(settings=DispatcherSettings(redis_url=redis_server.url), broker=consumer_broker)
    container.handle_update.override(providers.Object(handler))
    register_actors(consumer_broker, container)
    worker = dramatiq.Worker(consumer_broker, worker_threads=2, worker_timeout=100)
    worker.start()
    dedup = RedisUpdateDeduplicator(client)
    try:
        queue = MailboxUpdateQueue(producer_broker, RedisChatMailbox(producer_broker.client))
        update = {"update_id": 31, "message": {"chat": {"id": 1}, "text": "/start"}}
        envelope = UpdateEnvelope("bot-r", 31, time.time(), "rid-31", update)
        queue.enqueue(envelope)
        wait_until(lambda: len(seen) == 1 and dedup.already_done("bot-r", 31))
        queue.enqueue(envelope)  # Telegram redelivery after the first was handled: skipped
        wait_until(lambda: client.llen("tgm:mbox:bot-r:1") == 0)
        consumer_broker.join("updates", timeout=10_000)
        worker.join()
    finally:
        worker.stop(timeout=10_000)
        consumer_broker.close()
        producer_broker.close()
        container.shutdown_resources()
    assert seen == [envelope]
