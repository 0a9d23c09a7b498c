"""TimelyMaintenanceRedisBroker on a real redis-server: a dead worker's unacked message comes back to its queue at
the first broker call after its heartbeat expired, not by a chance per call (issue 10)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.services.dispatcher.adapters.redis_broker import TimelyMaintenanceRedisBroker

pytestmark = pytest.mark.redis


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def namespace() -> str:
    return f"test-dramatiq-{uuid.uuid4().hex[:8]}"


MakeBroker = Callable[[Ticks], TimelyMaintenanceRedisBroker]


@pytest.fixture
def make_broker(redis_server: RedisServer, namespace: str) -> Iterator[MakeBroker]:
    made: list[TimelyMaintenanceRedisBroker] = []

    def make(ticks: Ticks) -> TimelyMaintenanceRedisBroker:
        broker = TimelyMaintenanceRedisBroker(
            url=redis_server.url,
            namespace=namespace,
            heartbeat_timeout=1000,
            maintenance_interval_ms=1000,
            monotonic=ticks,
        )
        broker.declare_queue("q")
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


def queued(redis_server: RedisServer, namespace: str) -> int:
    return int(redis.Redis.from_url(redis_server.url).llen(f"{namespace}:q"))


def test_a_dead_workers_message_comes_back_at_the_next_call_after_its_heartbeat_expired(
    make_broker: MakeBroker, redis_server: RedisServer, namespace: str
) -> None:
    dead_ticks, live_ticks = Ticks(), Ticks()
    dead, live = make_broker(dead_ticks), make_broker(live_ticks)
    message = dramatiq.Message(queue_name="q", actor_name="a", args=(), kwargs={}, options={})
    live.enqueue(message)
    assert [m for m in dead.do_fetch("q", 1)], "the dead-to-be worker fetched the message (unacked)"
    assert queued(redis_server, namespace) == 0

    deadline = time.monotonic() + 10
    while queued(redis_server, namespace) == 0 and time.monotonic() < deadline:
        live_ticks.now += 1.0  # the maintenance interval passed: the next call runs it
        live.do_qsize("q")
        time.sleep(0.1)  # real time must pass too: Dramatiq's heartbeat ages by Redis-side timestamps
    assert queued(redis_server, namespace) == 1, "the dead worker's message was not given back"


def test_maintenance_runs_at_most_once_per_interval_per_queue(make_broker: MakeBroker) -> None:
    ticks = Ticks()
    broker = make_broker(ticks)
    decisions = []
    for command in ("fetch", "fetch", "enqueue"):
        broker._calling.queue = "q"
        decisions.append(broker._should_do_maintenance(command))
    broker._calling.queue = "other"
    decisions.append(broker._should_do_maintenance("fetch"))
    broker._calling.queue = "q"
    decisions.append(broker._should_do_maintenance("ack"))  # never on ack/nack (Dramatiq's own rule)
    ticks.now += 1.0
    decisions.append(broker._should_do_maintenance("fetch"))
    assert decisions == [1, 0, 0, 1, 0, 1]
