"""The broker probe: PING on the broker's Redis, always ready on an in-process broker (embedded mode)."""

from __future__ import annotations

import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from tgm.messaging.mailbox import redis_client_of
from tgm.services.gateway.adapters.readiness import BrokerProbe


class Pinger:
    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer

    def ping(self) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_an_in_process_broker_has_no_redis_and_is_always_ready() -> None:
    assert redis_client_of(StubBroker()) is None
    assert BrokerProbe(None)() is True


def test_a_redis_broker_gives_its_own_client() -> None:
    broker = RedisBroker(url="redis://127.0.0.1:1/0")  # type: ignore[no-untyped-call]  # connects lazily: no server
    client = redis_client_of(broker)
    assert isinstance(client, redis.Redis) and client is broker.client


def test_the_probe_is_ready_only_when_redis_answers() -> None:
    assert BrokerProbe(Pinger(True))() is True
    assert BrokerProbe(Pinger(False))() is False
    assert BrokerProbe(Pinger(redis.ConnectionError("down")))() is False
