"""The dispatcher's composition root: the only place where adapters are chosen.

The Telegram and vault clients are imported lazily so this module loads without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
from dependency_injector import containers, providers

from libs.domain.clock import SystemClock
from libs.domain.ports import TelegramApi, TokenVault, UpdateDeduplicator
from libs.domain.use_cases.handle_update import HandleUpdate
from libs.grpc_runtime.channels import open_channel
from libs.registry_client.client import GrpcBotDirectory
from services.dispatcher.adapters.direct_outbox import DirectOutbox
from services.dispatcher.settings import DispatcherSettings


def _channel(target: str) -> Iterator[grpc.Channel]:
    channel = open_channel(target)
    try:
        yield channel
    finally:
        channel.close()


def _telegram_api(base_url: str, timeout_seconds: float) -> TelegramApi:
    from libs.telegram_http.client import HttpTelegramApi

    api: TelegramApi = HttpTelegramApi(base_url, timeout_seconds=timeout_seconds)
    return api


def _token_vault(channel: grpc.Channel) -> TokenVault:
    from libs.vault_client.client import GrpcTokenVault

    vault: TokenVault = GrpcTokenVault(channel)
    return vault


def _redis_client(url: str) -> Iterator[Any]:
    if not url:
        yield None
        return
    import redis

    client = redis.Redis.from_url(url)
    try:
        yield client
    finally:
        client.close()


def _deduplicator(client: Any, ttl_seconds: int) -> UpdateDeduplicator:
    """Redis when there is one (shared by every worker process), else in-memory (embedded: one process)."""
    if client is None:
        from services.dispatcher.adapters.memory import InMemoryUpdateDeduplicator

        return InMemoryUpdateDeduplicator(ttl_seconds=ttl_seconds)
    from services.dispatcher.adapters.redis_dedup import RedisUpdateDeduplicator

    return RedisUpdateDeduplicator(client, ttl_seconds=ttl_seconds)


class DispatcherContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=DispatcherSettings)

    clock = providers.Singleton(SystemClock)
    registry_channel = providers.Resource(_channel, settings.provided.registry_addr)
    vault_channel = providers.Resource(_channel, settings.provided.vault_addr)
    redis_client = providers.Resource(_redis_client, settings.provided.redis_url)

    bot_directory = providers.Singleton(
        GrpcBotDirectory, channel=registry_channel, ttl_seconds=settings.provided.bot_cache_ttl_seconds, clock=clock
    )
    telegram = providers.Singleton(
        _telegram_api, settings.provided.telegram_api_base_url, settings.provided.telegram_timeout_seconds
    )
    vault = providers.Singleton(_token_vault, vault_channel)
    deduplicator = providers.Singleton(_deduplicator, redis_client, settings.provided.dedup_ttl_seconds)

    outbox = providers.Singleton(DirectOutbox, bots=bot_directory, vault=vault, telegram=telegram)
    handle_update = providers.Singleton(HandleUpdate, bots=bot_directory, outbox=outbox)
