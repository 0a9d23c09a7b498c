"""The dispatcher chooses Redis or in-memory adapters in one place: DispatcherSettings.backend, from REDIS_URL, read by
one Selector per adapter in the container. Nothing connects here: redis-py connects on the first command."""

from __future__ import annotations

import pytest
from dependency_injector import providers
from dramatiq.brokers.stub import StubBroker

from tgm.messaging.mailbox import InMemoryChatMailbox, RedisChatMailbox, in_memory_mailbox_for
from tgm.services.dispatcher.adapters import broadcasts, interaction_stats, memory, redis_abuse
from tgm.services.dispatcher.adapters.captcha_store import InMemoryCaptchaStore, RedisCaptchaStore
from tgm.services.dispatcher.adapters.dead_letters import RedisDeadLetters
from tgm.services.dispatcher.adapters.inbox_links import InMemoryInboxLinks, RedisInboxLinks
from tgm.services.dispatcher.adapters.redis_chat_lane import RedisChatLane
from tgm.services.dispatcher.adapters.redis_dedup import RedisUpdateDeduplicator
from tgm.services.dispatcher.container import DispatcherContainer
from tgm.services.dispatcher.manager_bot import state
from tgm.services.dispatcher.outbound.outbox_lane import RedisOutboxLane
from tgm.services.dispatcher.outbound.send_gate import ComposedDirectSendGate, RedisDirectSendGate
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore, RedisOutboxStore
from tgm.services.dispatcher.settings import DispatcherSettings

REDIS_URL = "redis://127.0.0.1:1/0"  # never reached: nothing here sends a command


def test_the_backend_follows_redis_url() -> None:
    assert DispatcherSettings(redis_url="").backend == "memory"
    assert DispatcherSettings(redis_url=REDIS_URL).backend == "redis"


def _built(container: DispatcherContainer) -> dict[str, object]:
    manager = container.manager_bot()
    return {
        "deduplicator": container.deduplicator(),
        "locks": container.locks(),
        "rate_limiter": container.rate_limiter(),
        "cooldowns": container.cooldowns(),
        "dead_letters": container.dead_letters(),
        "send_limiter": container.send_limiter(),
        "outbox_store": container.outbox_store(),
        "mailbox": container.mailbox(),
        "inbox_links": container.inbox_links(),
        "captcha_store": container.captcha_store(),
        "broadcast_store": container.broadcast_store(),
        "interaction_recorder": container.interaction_recorder(),
        "direct_send_gate": container.direct_send()._gate,
        "chat_lane": container.drain_chat()._lane,
        "outbox_lane": container.drain_outbox()._lane,
        "conversations": manager._conversations,
        "sessions": manager._sessions,
        "used_buttons": manager._used_buttons,
    }


def test_without_redis_every_adapter_is_in_memory() -> None:
    broker = StubBroker()
    container = DispatcherContainer(settings=DispatcherSettings(redis_url=""), broker=broker)
    try:
        built = _built(container)
        assert container.redis_client() is None
    finally:
        container.shutdown_resources()
    expected = {
        "deduplicator": memory.InMemoryUpdateDeduplicator,
        "locks": memory.InMemoryLocks,
        "rate_limiter": memory.InMemoryRateLimiter,
        "cooldowns": memory.InMemoryCooldowns,
        "dead_letters": memory.InMemoryDeadLetters,
        "send_limiter": memory.InMemorySendLimiter,
        "outbox_store": InMemoryOutboxStore,
        "mailbox": InMemoryChatMailbox,
        "inbox_links": InMemoryInboxLinks,
        "captcha_store": InMemoryCaptchaStore,
        "broadcast_store": broadcasts.InMemoryBroadcastStore,
        "interaction_recorder": interaction_stats.InMemoryInteractionBuffer,
        "direct_send_gate": ComposedDirectSendGate,
        "conversations": state.InMemoryConversationStore,
        "sessions": state.InMemoryAdminSessions,
        "used_buttons": state.InMemoryUsedButtons,
    }
    for name, kind in expected.items():
        assert type(built[name]) is kind, name
    embedded_gateways = in_memory_mailbox_for(broker)
    assert built["mailbox"] is embedded_gateways, "the embedded gateway pushes to the mailbox its dispatcher drains"
    assert built["outbox_lane"] is not None and built["chat_lane"] is not None  # composed of the ports above
    assert not isinstance(built["chat_lane"], RedisChatLane)
    assert not isinstance(built["outbox_lane"], RedisOutboxLane)
    assert container.deferred_sent_marks() is None


def test_with_redis_every_adapter_is_the_shared_one() -> None:
    container = DispatcherContainer(settings=DispatcherSettings(redis_url=REDIS_URL), broker=StubBroker())
    try:
        built = _built(container)
    finally:
        container.shutdown_resources()
    expected = {
        "deduplicator": RedisUpdateDeduplicator,
        "locks": redis_abuse.RedisLocks,
        "rate_limiter": redis_abuse.RedisRateLimiter,
        "cooldowns": redis_abuse.RedisCooldowns,
        "dead_letters": RedisDeadLetters,
        "send_limiter": redis_abuse.RedisSendLimiter,
        "outbox_store": RedisOutboxStore,
        "mailbox": RedisChatMailbox,
        "inbox_links": RedisInboxLinks,
        "captcha_store": RedisCaptchaStore,
        "broadcast_store": broadcasts.RedisBroadcastStore,
        "interaction_recorder": interaction_stats.SpillingRecorder,
        "direct_send_gate": RedisDirectSendGate,
        "chat_lane": RedisChatLane,
        "outbox_lane": RedisOutboxLane,
        "conversations": state.RedisConversationStore,
        "sessions": state.RedisAdminSessions,
        "used_buttons": state.RedisUsedButtons,
    }
    for name, kind in expected.items():
        assert type(built[name]) is kind, name


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_test_overrides_the_backend_or_one_adapter_instead_of_probing(backend: str) -> None:
    container = DispatcherContainer(settings=DispatcherSettings(redis_url=REDIS_URL), broker=StubBroker())
    container.backend.override(providers.Object(backend))
    fake_locks = memory.InMemoryLocks()
    container.locks.override(providers.Object(fake_locks))
    try:
        assert container.locks() is fake_locks
        cooldowns = container.cooldowns()
        assert isinstance(cooldowns, memory.InMemoryCooldowns if backend == "memory" else redis_abuse.RedisCooldowns)
    finally:
        container.shutdown_resources()
