"""The broker probe: PING on the broker's Redis, always ready on an in-process broker (embedded mode)."""

from __future__ import annotations

import redis
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from tgm.messaging.update_queue import InProcessUpdateQueue, RedisUpdateQueue
from tgm.services.gateway.adapters.readiness import BrokerProbe
from tgm.services.gateway.container import GatewayContainer
from tgm.services.gateway.settings import GatewaySettings


class Pinger:
    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer

    def ping(self) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_without_redis_the_probe_is_always_ready() -> None:
    assert BrokerProbe(None)() is True


def test_the_probe_is_ready_only_when_redis_answers() -> None:
    assert BrokerProbe(Pinger(True))() is True
    assert BrokerProbe(Pinger(False))() is False
    assert BrokerProbe(Pinger(redis.ConnectionError("down")))() is False


def _container(redis_url: str, broker: Broker) -> GatewayContainer:
    return GatewayContainer(settings=GatewaySettings(redis_url=redis_url), broker=broker)


def test_the_gateway_chooses_queue_and_probe_on_one_backend() -> None:
    """GatewaySettings.backend (from REDIS_URL) picks both: no probing of the broker's type."""
    in_process = _container("", StubBroker())
    assert in_process.settings().backend == "memory"
    assert isinstance(in_process.update_queue(), InProcessUpdateQueue)
    probe = in_process.readiness_probes()[1]
    assert probe._client is None and probe() is True

    broker = RedisBroker(url="redis://127.0.0.1:1/0")  # type: ignore[no-untyped-call]  # connects lazily
    on_redis = _container("redis://127.0.0.1:1/0", broker)
    assert isinstance(on_redis.update_queue(), RedisUpdateQueue)
    probe = on_redis.readiness_probes()[1]
    assert probe._client is broker.client and probe() is False, "nothing listens there: not ready"
