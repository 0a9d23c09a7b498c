"""The composition root of botregistry: the only place adapters are chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from tgm.domain.administration.bot_administration import BotAdministration
from tgm.domain.administration.register_bot import RegisterBot
from tgm.domain.clock import SystemClock
from tgm.domain.events import PurgeExpiredEvents
from tgm.services.botregistry.adapters.sql import (
    SqlBotRepository,
    SqlEventTrail,
    SqlInteractionStats,
    make_engine,
    make_session_factory,
)
from tgm.services.botregistry.adapters.sql_admins import SqlBotAdminStore
from tgm.services.botregistry.grpc.servicer import RegistryServicer
from tgm.services.botregistry.interaction_batches import InteractionBatches
from tgm.services.botregistry.settings import RegistrySettings

if TYPE_CHECKING:
    import grpc


def _open_vault_channel(vault_addr: str) -> grpc.Channel:
    from tgm.grpc_runtime.channels import VAULT_SERVER_NAME, open_channel

    return open_channel(vault_addr, server_name=VAULT_SERVER_NAME)


def _grpc_vault(channel: grpc.Channel) -> Any:
    # Imported lazily: the client library is optional until the registry actually serves.
    from tgm.vault_client.client import GrpcTokenVault

    return GrpcTokenVault(channel)


def _http_telegram(base_url: str, timeout_seconds: float) -> Any:
    from tgm.telegram_http.client import HttpTelegramApi

    return HttpTelegramApi(base_url, timeout_seconds)


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(RegistrySettings)

    engine = providers.Singleton(
        make_engine,
        url=settings.provided.db_url,
        pool_size=settings.provided.db_pool_size,
        max_overflow=settings.provided.db_max_overflow,
    )
    session_factory = providers.Singleton(make_session_factory, engine)
    bots = providers.Singleton(SqlBotRepository, session_factory)

    vault_channel = providers.Singleton(_open_vault_channel, settings.provided.vault_addr)
    vault = providers.Singleton(_grpc_vault, vault_channel)
    telegram = providers.Singleton(
        _http_telegram,
        base_url=settings.provided.telegram_api_base_url,
        timeout_seconds=settings.provided.telegram_timeout_seconds,
    )
    clock = providers.Singleton(SystemClock)

    register_bot = providers.Singleton(
        RegisterBot,
        bots=bots,
        telegram=telegram,
        vault=vault,
        clock=clock,
        webhook_base_url=settings.provided.webhook_base_url,
    )
    stats = providers.Singleton(SqlInteractionStats, session_factory)
    # Co-admins and their invites (issue 15, src/tgm/domain/bot_roles.py).
    bot_admins = providers.Singleton(SqlBotAdminStore, session_factory)
    administration = providers.Singleton(
        BotAdministration,
        bots=bots,
        manager=bots,
        telegram=telegram,
        vault=vault,
        clock=clock,
        register_bot=register_bot,
        stats=stats,
        admins=bot_admins,
    )
    interaction_batches = providers.Singleton(InteractionBatches, stats=stats, clock=clock)
    # The event trail (issue 9): admin actions recorded by the servicer, refused callbacks and key rotations sent
    # in with RecordEvent, purged after EVENT_RETENTION_DAYS.
    events = providers.Singleton(SqlEventTrail, session_factory)
    purge_events = providers.Singleton(
        PurgeExpiredEvents, trail=events, clock=clock, retention_days=settings.provided.event_retention_days
    )
    servicer = providers.Singleton(
        RegistryServicer,
        register_bot=register_bot,
        bots=bots,
        admin=administration,
        interactions=interaction_batches,
        events=events,
        clock=clock,
    )
