"""The gateway's composition root: the only place where adapters are chosen."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import grpc
from dependency_injector import containers, providers

from tgm.domain.clock import SystemClock
from tgm.domain.ports import AsyncUpdateQueue, TokenVault
from tgm.grpc_runtime.channels import open_channel
from tgm.messaging.envelope_signing import signer_from_key
from tgm.messaging.mailbox import in_memory_mailbox_for
from tgm.messaging.update_queue import InProcessUpdateQueue, MailboxUpdateQueue, RedisUpdateQueue
from tgm.registry_client.client import GrpcRouteDirectory
from tgm.services.gateway.adapters.readiness import BrokerProbe, GrpcHealthProbe
from tgm.services.gateway.settings import GatewaySettings


def _channel(target: str) -> Iterator[grpc.Channel]:
    channel = open_channel(target)
    try:
        yield channel
    finally:
        channel.close()


def _token_vault(channel: grpc.Channel) -> TokenVault:
    from tgm.vault_client.client import GrpcTokenVault

    vault: TokenVault = GrpcTokenVault(channel)
    return vault


def _redis_update_queue(redis_url: str, signing_key: object) -> AsyncUpdateQueue:
    """One awaited round trip per update on redis.asyncio (hiredis parser)."""
    import redis.asyncio

    # A blocking pool: a burst beyond 256 concurrent enqueues waits (up to 5 s) for a connection instead of
    # failing; a Redis that cannot be reached fails the request (503 + Retry-After: Telegram redelivers).
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        redis_url, max_connections=256, timeout=5, socket_connect_timeout=2, socket_keepalive=True
    )
    return RedisUpdateQueue(redis.asyncio.Redis(connection_pool=pool), signer=signer_from_key(signing_key))


def _in_process_update_queue(broker: dramatiq.Broker) -> AsyncUpdateQueue:
    """Embedded: the in-process broker's mailbox, which the dispatcher in the same process drains."""
    return InProcessUpdateQueue(MailboxUpdateQueue(broker, in_memory_mailbox_for(broker)))


def _chosen(queue: AsyncUpdateQueue) -> AsyncUpdateQueue:
    """The queue the Selector chose, kept by the Singleton around it."""
    return queue


class GatewayContainer(containers.DeclarativeContainer):
    """Give it `settings` and a Dramatiq `broker` (Redis in production, a StubBroker in embedded mode)."""

    settings = providers.Dependency(instance_of=GatewaySettings)
    broker = providers.Dependency(instance_of=dramatiq.Broker)

    clock = providers.ThreadSafeSingleton(SystemClock)
    # Redis or in-process, chosen once (GatewaySettings.backend); tests override this or a provider.
    backend = settings.provided.backend
    registry_channel = providers.Resource(_channel, settings.provided.registry_addr)

    route_directory = providers.ThreadSafeSingleton(
        GrpcRouteDirectory,
        channel=registry_channel,
        ttl_seconds=settings.provided.route_cache_ttl_seconds,
        negative_ttl_seconds=settings.provided.route_negative_ttl_seconds,
        clock=clock,
        revalidate_seconds=settings.provided.route_revalidate_seconds,
    )
    # Per-chat order: the envelope goes to its chat's mailbox, and a `drain_chat` message (ids only) when none is due.
    # Chosen once and kept: a Selector re-reads the setting on every call (pydantic attribute lookups, ~6 % of the
    # webhook's CPU in the bench's profile), and the webhook asks for the queue on every request.
    update_queue = providers.ThreadSafeSingleton(
        _chosen,
        providers.Selector(
            backend,
            redis=providers.ThreadSafeSingleton(
                _redis_update_queue, settings.provided.redis_url, settings.provided.envelope_signing_key
            ),
            memory=providers.ThreadSafeSingleton(_in_process_update_queue, broker),
        ),
    )

    # Manager-bot updates only: token-shaped text is sealed (vault Encrypt) before it is enqueued.
    vault_channel = providers.Resource(_channel, settings.provided.vault_addr)
    vault = providers.ThreadSafeSingleton(_token_vault, vault_channel)

    readiness_probes = providers.List(
        providers.ThreadSafeSingleton(GrpcHealthProbe, "registry", registry_channel),
        # On Redis the gateway's broker is a RedisBroker on the same server (src/tgm/services/gateway/app.py):
        # its client answers PING; the in-process broker is always reachable.
        providers.Selector(
            backend,
            redis=providers.ThreadSafeSingleton(BrokerProbe, broker.provided.client),
            memory=providers.ThreadSafeSingleton(BrokerProbe, None),
        ),
    )
