"""Acks that ride on the next fetch (TimelyMaintenanceRedisBroker, issue 8) on a real redis-server: an ack is
noted, sent in the same round trip as the queue's next fetch or at the consumer's close, survives a Redis that lost
its scripts and a failed round trip, and a worker leaves nothing unacked behind."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.services.dispatcher.adapters.redis_broker import TimelyMaintenanceRedisBroker

pytestmark = pytest.mark.redis

QUEUE = "q"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[TimelyMaintenanceRedisBroker]:
    made = TimelyMaintenanceRedisBroker(url=redis_server.url, namespace=f"test-acks-{uuid.uuid4().hex[:8]}")
    made.declare_queue(QUEUE)
    yield made
    made.close()


def unacked(client: redis.Redis, broker: TimelyMaintenanceRedisBroker) -> int:
    return int(client.scard(f"{broker.namespace}:__acks__.{broker.broker_id}.{QUEUE}"))


def stored(client: redis.Redis, broker: TimelyMaintenanceRedisBroker) -> int:
    return int(client.hlen(f"{broker.namespace}:{QUEUE}.msgs"))


def enqueue(broker: TimelyMaintenanceRedisBroker, n: int) -> None:
    for i in range(n):
        broker.enqueue(dramatiq.Message(queue_name=QUEUE, actor_name="a", args=(i,), kwargs={}, options={}))


class FailingPipeline:
    """A pipeline whose round trip fails with `error` (commands are accepted, nothing is sent)."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: None

    def execute(self, **_kwargs: Any) -> Any:
        raise self._error


def next_message(consumer: Any) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            return message
    raise AssertionError("no message within 10 s")


def test_an_ack_waits_for_the_next_fetch_and_goes_with_it(
    broker: TimelyMaintenanceRedisBroker, client: redis.Redis
) -> None:
    enqueue(broker, 2)
    consumer = broker.consume(QUEUE, prefetch=1, timeout=50)
    first = next_message(consumer)
    consumer.ack(first)
    assert unacked(client, broker) == 1 and stored(client, broker) == 2, "noted, not sent yet"
    second = next_message(consumer)
    assert second.args != first.args
    assert unacked(client, broker) == 1, "the first one's ack went out with the fetch of the second"
    assert stored(client, broker) == 1
    consumer.ack(second)
    consumer.close()
    assert unacked(client, broker) == 0 and stored(client, broker) == 0, "close sends what is left"


def test_acks_go_out_even_when_redis_lost_its_scripts(
    broker: TimelyMaintenanceRedisBroker, client: redis.Redis
) -> None:
    enqueue(broker, 2)
    consumer = broker.consume(QUEUE, prefetch=1, timeout=50)
    first = next_message(consumer)
    consumer.ack(first)
    client.script_flush()  # as after a Redis restart without persistence of the script cache
    second = next_message(consumer)
    assert second.args != first.args
    assert unacked(client, broker) == 1 and stored(client, broker) == 1


def test_a_failed_round_trip_keeps_the_acks_for_the_next_one(
    broker: TimelyMaintenanceRedisBroker, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueue(broker, 1)
    consumer = broker.consume(QUEUE, prefetch=1, timeout=50)
    consumer.ack(next_message(consumer))

    real_pipeline = broker.client.pipeline
    monkeypatch.setattr(broker.client, "pipeline", lambda **_kwargs: FailingPipeline(redis.ConnectionError("gone")))
    with pytest.raises(dramatiq.ConnectionClosed):
        next(consumer)
    monkeypatch.setattr(broker.client, "pipeline", real_pipeline)
    assert unacked(client, broker) == 1
    broker.flush_acks(QUEUE)
    assert unacked(client, broker) == 0 and stored(client, broker) == 0


def test_a_worker_leaves_nothing_unacked_and_runs_each_message_once(
    broker: TimelyMaintenanceRedisBroker, client: redis.Redis
) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="a", max_retries=0)
    def record(i: int) -> None:
        with lock:
            seen.append(i)

    enqueue(broker, 200)
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=50)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop(timeout=10_000)
    assert sorted(seen) == list(range(200))
    assert unacked(client, broker) == 0 and stored(client, broker) == 0


def test_a_timed_out_round_trip_keeps_the_acks_too(
    broker: TimelyMaintenanceRedisBroker, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueue(broker, 1)
    consumer = broker.consume(QUEUE, prefetch=1, timeout=50)
    consumer.ack(next_message(consumer))

    real_pipeline = broker.client.pipeline
    timeout = redis.TimeoutError("Redis did not answer in time")  # not a ConnectionError
    monkeypatch.setattr(broker.client, "pipeline", lambda **_kwargs: FailingPipeline(timeout))
    with pytest.raises(redis.TimeoutError):
        broker.do_fetch(QUEUE, 1)
    monkeypatch.setattr(broker.client, "pipeline", real_pipeline)
    broker.flush_acks(QUEUE)
    assert unacked(client, broker) == 0 and stored(client, broker) == 0


def test_the_external_queue_acks_at_once(redis_server: RedisServer, client: redis.Redis) -> None:
    made = TimelyMaintenanceRedisBroker(url=redis_server.url, namespace=f"test-acks-{uuid.uuid4().hex[:8]}")
    try:
        made.declare_queue("external")
        made.enqueue(dramatiq.Message(queue_name="external", actor_name="a", args=(), kwargs={}, options={}))
        consumer = made.consume("external", prefetch=1, timeout=50)
        consumer.ack(next_message(consumer))
        assert client.scard(f"{made.namespace}:__acks__.{made.broker_id}.external") == 0, "a tenant API call is not"
        assert client.hlen(f"{made.namespace}:external.msgs") == 0, "redelivered after a crash: acked at once"
    finally:
        made.close()
