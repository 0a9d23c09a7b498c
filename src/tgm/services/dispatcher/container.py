"""The dispatcher's composition root: the only place where adapters are chosen.

The Telegram and vault clients are imported lazily so this module loads without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import grpc
from dependency_injector import containers, providers

from tgm.domain.bots import RateRule
from tgm.domain.captcha import CaptchaGuard, CaptchaPolicy, CaptchaStore
from tgm.domain.clock import SystemClock
from tgm.domain.inbound import BotActions, InboundGuard, InboundPolicy
from tgm.domain.inbox import LINK_TTL_SECONDS, FeedbackInbox, InboxLinks
from tgm.domain.lane import LockKeeper
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.ports import ChatLane, TelegramApi, TokenVault, UpdateDeduplicator
from tgm.domain.use_cases.broadcast import BroadcastPolicy, RunBroadcast
from tgm.domain.use_cases.drain_chat import DrainChat, DrainPolicy
from tgm.domain.use_cases.handle_update import HandleUpdate
from tgm.domain.use_cases.run_api_call import RetryPolicy, RunApiCall, StartApiCall
from tgm.grpc_runtime.channels import open_channel
from tgm.messaging.envelope_signing import EnvelopeSigner, signer_from_key
from tgm.messaging.mailbox import mailbox_for
from tgm.registry_client.admin import GrpcBotAdmin
from tgm.registry_client.client import GrpcBotDirectory
from tgm.registry_client.events import BackgroundEventRecorder, GrpcEventRecorder
from tgm.services.dispatcher.adapters import bot_changes, broadcasts, interaction_stats, memory, subscribers
from tgm.services.dispatcher.adapters import bot_teams as bot_teams_adapter
from tgm.services.dispatcher.adapters.captcha_store import InMemoryCaptchaStore, RedisCaptchaStore
from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox
from tgm.services.dispatcher.adapters.external_api import HttpExternalApi
from tgm.services.dispatcher.adapters.inbox_links import InMemoryInboxLinks, RedisInboxLinks
from tgm.services.dispatcher.adapters.sent_marks import DeferredSentMarks
from tgm.services.dispatcher.manager_bot import wiring as manager_wiring
from tgm.services.dispatcher.manager_bot.router import UpdateRouter
from tgm.services.dispatcher.outbound.direct_send import DirectSend
from tgm.services.dispatcher.outbound.drain import DrainOutbox, OutboxPolicy
from tgm.services.dispatcher.outbound.flushing_handler import FlushingHandler
from tgm.services.dispatcher.outbound.outbox_lane import RedisOutboxLane
from tgm.services.dispatcher.outbound.ports import DirectSendGate, OutboxLane
from tgm.services.dispatcher.outbound.queued_outbox import QueuedOutbox
from tgm.services.dispatcher.outbound.scheduling import DramatiqOutboxScheduler
from tgm.services.dispatcher.outbound.send_gate import ComposedDirectSendGate, RedisDirectSendGate
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore
from tgm.services.dispatcher.settings import DispatcherSettings
from tgm.services.dispatcher.workers.actors import DramatiqApiCallScheduler, DramatiqBroadcastScheduler


def _channel(target: str) -> Iterator[grpc.Channel]:
    channel = open_channel(target)
    try:
        yield channel
    finally:
        channel.close()


def _telegram_api(base_url: str, timeout_seconds: float) -> TelegramApi:
    from tgm.telegram_http.client import HttpTelegramApi

    api: TelegramApi = HttpTelegramApi(base_url, timeout_seconds=timeout_seconds)
    return api


def _token_vault(channel: grpc.Channel) -> TokenVault:
    from tgm.vault_client.client import GrpcTokenVault

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
        from tgm.services.dispatcher.adapters.memory import InMemoryUpdateDeduplicator

        return InMemoryUpdateDeduplicator(ttl_seconds=ttl_seconds)
    from tgm.services.dispatcher.adapters.redis_dedup import RedisUpdateDeduplicator

    return RedisUpdateDeduplicator(client, ttl_seconds=ttl_seconds)


def _chat_lane(
    client: Any,
    dedup_ttl_seconds: int,
    signer: EnvelopeSigner | None = None,
    sent_marks: DeferredSentMarks | None = None,
) -> ChatLane | None:
    """On Redis, one Lua script per drain step; None lets DrainChat compose the lane from the in-memory ports."""
    if client is None:
        return None
    from tgm.services.dispatcher.adapters.redis_chat_lane import RedisChatLane

    return RedisChatLane(client, dedup_ttl_seconds=dedup_ttl_seconds, signer=signer, sent_marks=sent_marks)


def _deferred_sent_marks(client: Any, store: Any, defer: bool) -> DeferredSentMarks | None:
    """With DEFER_SENT_MARKS on Redis a direct send's mark rides on the update's completion script; otherwise (the
    default, and in memory) it is written at once."""
    return DeferredSentMarks(store.mark_sent) if client is not None and defer else None


def _outbox_lane(client: Any) -> OutboxLane | None:
    """On Redis, one Lua script per outbox drain step; None lets DrainOutbox compose it from store and locks."""
    return None if client is None else RedisOutboxLane(client)


def _direct_send_gate(client: Any, store: Any, limiter: Any) -> DirectSendGate:
    """One round trip on Redis (lane, sent mark and send slot in one script); composed of the ports in memory."""
    return ComposedDirectSendGate(store, limiter) if client is None else RedisDirectSendGate(client, limiter)


def _broadcast_store(client: Any) -> Any:
    """Redis (AOF: a broadcast resumes after any crash) when there is Redis, else memory (embedded: one process)."""
    return broadcasts.InMemoryBroadcastStore() if client is None else broadcasts.RedisBroadcastStore(client)


def _redis_adapters() -> dict[str, Any]:
    from tgm.services.dispatcher.adapters import redis_abuse
    from tgm.services.dispatcher.adapters.dead_letters import RedisDeadLetters
    from tgm.services.dispatcher.outbound.store import RedisOutboxStore

    return {
        "locks": redis_abuse.RedisLocks,
        "rate": redis_abuse.RedisRateLimiter,
        "cooldowns": redis_abuse.RedisCooldowns,
        "send": redis_abuse.RedisSendLimiter,
        "dead": RedisDeadLetters,
        "obox": RedisOutboxStore,
    }


def _adapter(client: Any, kind: str, **kwargs: Any) -> Any:
    """The Redis adapter when there is Redis (shared by every worker process), else the in-memory one."""
    memory_factories: dict[str, Any] = {
        "locks": memory.InMemoryLocks,
        "rate": memory.InMemoryRateLimiter,
        "cooldowns": memory.InMemoryCooldowns,
        "send": memory.InMemorySendLimiter,
        "dead": memory.InMemoryDeadLetters,
        "obox": InMemoryOutboxStore,
    }
    if client is None:
        return memory_factories[kind](**kwargs)
    return _redis_adapters()[kind](client, **kwargs)


def _bot_actions(bots: Any) -> Callable[[str], BotActions | None]:
    """What each bot handles, for the inbound guard (src/tgm/domain/inbound.py)."""
    from tgm.domain.manager_bot.commands import MANAGER_COMMANDS, REDEEM_RATE_LIMITS

    def actions(bot_id: str) -> BotActions | None:
        try:
            bot = bots.get_bot(bot_id)
        except Exception:
            return None  # unknown: the guard is conservative
        if bot is None:
            return None
        limits, cooldowns = bot.settings.rate_limits, bot.settings.cooldowns  # the bot's own (issue 12)
        if bot.is_manager:
            return BotActions(
                commands=frozenset(MANAGER_COMMANDS),
                other_commands=True,
                private_text=True,
                rate_limits={**REDEEM_RATE_LIMITS, **limits},
                cooldowns=cooldowns,
            )
        defined = {"/start", *bot.settings.custom_commands, *bot.settings.api_commands}
        return BotActions(
            commands=frozenset(defined),
            callbacks=frozenset(),
            private_text=bot.settings.inbox_enabled,  # the inbox reads every private message: limited as "msg"
            rate_limits=limits,
            cooldowns=cooldowns,
        )

    return actions


def _captcha_store(client: Any, settings: DispatcherSettings, clock: Any) -> CaptchaStore:
    """Shared by every process on Redis; in memory embedded."""
    per_minute, attack = settings.captcha_new_users_per_minute, settings.captcha_attack_seconds
    warmup = settings.captcha_warmup_seconds
    if client is None:
        return InMemoryCaptchaStore(
            clock, new_users_per_minute=per_minute, attack_seconds=attack, warmup_seconds=warmup
        )
    return RedisCaptchaStore(client, new_users_per_minute=per_minute, attack_seconds=attack, warmup_seconds=warmup)


def _inbox_links(client: Any, clock: Any) -> InboxLinks:
    """Shared by every process on Redis; in memory embedded."""
    return InMemoryInboxLinks(clock=clock) if client is None else RedisInboxLinks(client)


def _inbox_tokens(settings: DispatcherSettings, clock: Any) -> Any:
    """The inbox's buttons (Block / Unblock under a delivered message) live as long as its links, not the manager's
    few minutes; same keys."""
    return manager_wiring.callback_tokens(
        settings.callback_signing_key.get_secret_value(),
        clock,
        LINK_TTL_SECONDS,
        settings.callback_signing_key_previous.get_secret_value(),
    )


def _inbound_policy(settings: DispatcherSettings) -> InboundPolicy:
    default = RateRule(settings.rate_limit_default_limit, settings.rate_limit_default_window)
    return InboundPolicy.parse(settings.rate_limits_json, settings.cooldowns_json, default=default)


class DispatcherContainer(containers.DeclarativeContainer):
    """Give it `settings` and the Dramatiq `broker` the actors run on (Redis, or a StubBroker embedded)."""

    settings = providers.Dependency(instance_of=DispatcherSettings)
    broker = providers.Dependency(instance_of=dramatiq.Broker)

    clock = providers.ThreadSafeSingleton(SystemClock)
    registry_channel = providers.Resource(_channel, settings.provided.registry_addr)
    vault_channel = providers.Resource(_channel, settings.provided.vault_addr)
    redis_client = providers.Resource(_redis_client, settings.provided.redis_url)

    bot_directory = providers.ThreadSafeSingleton(
        GrpcBotDirectory, channel=registry_channel, ttl_seconds=settings.provided.bot_cache_ttl_seconds, clock=clock
    )
    # Who runs each bot (the inbox's admins); forgotten with the bot on every announced change (bot_changes.py).
    bot_teams = providers.ThreadSafeSingleton(bot_teams_adapter.registry_teams, registry_channel, clock)
    bot_caches = providers.ThreadSafeSingleton(bot_teams_adapter.ForgetEverywhere, bot_directory, bot_teams)
    telegram = providers.ThreadSafeSingleton(
        _telegram_api, settings.provided.telegram_api_base_url, settings.provided.telegram_timeout_seconds
    )
    vault = providers.ThreadSafeSingleton(_token_vault, vault_channel)
    deduplicator = providers.ThreadSafeSingleton(_deduplicator, redis_client, settings.provided.dedup_ttl_seconds)

    locks = providers.ThreadSafeSingleton(_adapter, redis_client, "locks")
    rate_limiter = providers.ThreadSafeSingleton(_adapter, redis_client, "rate")
    cooldowns = providers.ThreadSafeSingleton(_adapter, redis_client, "cooldowns")
    dead_letters = providers.ThreadSafeSingleton(_adapter, redis_client, "dead")
    send_limiter = providers.ThreadSafeSingleton(
        _adapter,
        redis_client,
        "send",
        per_bot_per_second=settings.provided.outbound_per_bot_per_second,
        per_chat_per_second=settings.provided.outbound_per_chat_per_second,
        per_group_per_minute=settings.provided.outbound_per_group_per_minute,
        margin=settings.provided.outbound_window_margin,
        reserved_for_replies=settings.provided.broadcast_reserved_per_second,
    )
    outbox_store = providers.ThreadSafeSingleton(_adapter, redis_client, "obox")
    envelope_signer = providers.ThreadSafeSingleton(signer_from_key, settings.provided.envelope_signing_key)
    mailbox = providers.ThreadSafeSingleton(mailbox_for, broker, envelope_signer)

    # Sends one queued call with the bot's token, opened in the vault (kept in memory for a minute at most).
    sender = providers.ThreadSafeSingleton(
        DirectOutbox, bots=bot_directory, vault=vault, telegram=telegram, clock=clock
    )
    deferred_sent_marks = providers.ThreadSafeSingleton(
        _deferred_sent_marks, redis_client, outbox_store, settings.provided.defer_sent_marks
    )
    # Users who blocked a bot (403 on a send), reported to the registry: the subscribers' "blocked the bot" status.
    registry_admin = providers.ThreadSafeSingleton(GrpcBotAdmin, channel=registry_channel)
    # Inbox deliveries linked to their users once sent (src/tgm/domain/inbox.py).
    inbox_links = providers.ThreadSafeSingleton(_inbox_links, redis_client, clock)
    blocked_users = providers.ThreadSafeSingleton(subscribers.RegistryBlockedUsers, sink=registry_admin, clock=clock)
    direct_send = providers.ThreadSafeSingleton(
        DirectSend,
        gate=providers.ThreadSafeSingleton(_direct_send_gate, redis_client, outbox_store, send_limiter),
        store=outbox_store,
        sender=sender.provider,
        dead_letters=dead_letters,
        limiter=send_limiter,
        deferred_marks=deferred_sent_marks,
        blocked_users=blocked_users,
        links=inbox_links,
    )
    outbox = providers.ThreadSafeSingleton(QueuedOutbox, store=outbox_store, broker=broker, direct=direct_send)

    external_api = providers.ThreadSafeSingleton(
        HttpExternalApi,
        redis_client,
        fail_max=settings.provided.circuit_breaker_fail_max,
        reset_timeout_seconds=settings.provided.circuit_breaker_timeout,
        allow_private=settings.provided.external_api_allow_private,
    )
    api_scheduler = providers.ThreadSafeSingleton(DramatiqApiCallScheduler, broker)
    start_api_call = providers.ThreadSafeSingleton(
        StartApiCall,
        api=external_api,
        scheduler=api_scheduler,
        locks=locks,
        outbox=outbox,
        lock_ttl_seconds=settings.provided.external_api_lock_seconds,
        allow_private=settings.provided.external_api_allow_private,
    )
    run_api_call = providers.ThreadSafeSingleton(
        RunApiCall,
        bots=bot_directory,
        api=external_api,
        outbox=outbox,
        locks=locks,
        dead_letters=dead_letters,
        clock=clock,
        policy=providers.Factory(
            RetryPolicy,
            max_attempts=settings.provided.external_api_max_attempts,
            base_seconds=settings.provided.external_api_retry_base_seconds,
            max_seconds=settings.provided.external_api_retry_max_seconds,
        ),
    )

    # Signs and verifies inline buttons: the manager's and the managed bots' CAPTCHA buttons.
    callback_tokens = providers.ThreadSafeSingleton(manager_wiring.callback_tokens_from, settings, clock)
    captcha_store = providers.ThreadSafeSingleton(_captcha_store, redis_client, settings, clock)
    captcha = providers.ThreadSafeSingleton(
        CaptchaGuard,
        store=captcha_store,
        tokens=callback_tokens,
        outbox=outbox,
        policy=providers.Factory(
            CaptchaPolicy,
            max_attempts=settings.provided.captcha_max_attempts,
            lock_seconds=settings.provided.captcha_lock_seconds,
        ),
    )
    # The manager bot (issue 3): its handler, wiring and state adapters live in src/tgm/services/dispatcher/manager_bot.
    # Changes made through the manager reach every process's bot cache at once (adapters/bot_changes.py).
    bot_admin = providers.ThreadSafeSingleton(
        bot_changes.AnnouncingBotAdmin,
        admin=registry_admin,
        announce=providers.ThreadSafeSingleton(bot_changes.announcer, redis_client, bot_caches),
    )
    # Refused button presses, broadcasts and inbox blocks go to the registry's event trail, sent by one background
    # thread (no wait per update).
    event_recorder = providers.ThreadSafeSingleton(
        BackgroundEventRecorder, inner=providers.ThreadSafeSingleton(GrpcEventRecorder, channel=registry_channel)
    )
    feedback_inbox = providers.ThreadSafeSingleton(
        FeedbackInbox,
        links=inbox_links,
        outbox=outbox,
        tokens=providers.ThreadSafeSingleton(_inbox_tokens, settings, clock),
        admin=bot_admin,  # blocks from the inbox reach every process's bot cache at once, as the manager's do
        cooldowns=cooldowns,
        teams=bot_teams,
        events=event_recorder,
        clock=clock,
    )
    # The handler of one update: a single callable `handler(envelope) -> outcome`; put a router here.
    managed_bot_handler = providers.ThreadSafeSingleton(
        HandleUpdate,
        bots=bot_directory,
        outbox=outbox,
        api_calls=start_api_call,
        cooldowns=cooldowns,
        clock=clock,
        captcha=captcha,
        inbox=feedback_inbox,
    )
    # Broadcasts (issue 15): the record and progress in Redis, one `run_broadcast` message per batch.
    broadcast_store = providers.ThreadSafeSingleton(_broadcast_store, redis_client)
    broadcast_scheduler = providers.ThreadSafeSingleton(DramatiqBroadcastScheduler, broker)
    manager_bot = providers.ThreadSafeSingleton(
        ManagerBot,
        admin=bot_admin,
        outbox=outbox,
        tokens=callback_tokens,
        conversations=providers.ThreadSafeSingleton(manager_wiring.conversation_store, redis_client),
        sessions=providers.ThreadSafeSingleton(manager_wiring.admin_sessions, redis_client),
        used_buttons=providers.ThreadSafeSingleton(manager_wiring.used_buttons, redis_client),
        config=providers.ThreadSafeSingleton(manager_wiring.manager_config_from, settings),
        events=event_recorder,
        clock=clock,
        broadcasts=broadcast_store,
        broadcast_scheduler=broadcast_scheduler,
        inbox_links=inbox_links,
        bot_teams=bot_teams,
    )
    # Per-update stats: one Redis write (or a dict update embedded); a flusher thread batches them to the registry.
    interaction_recorder = providers.ThreadSafeSingleton(interaction_stats.recorder_for, redis_client)
    handle_update = providers.ThreadSafeSingleton(
        UpdateRouter,
        bots=bot_directory,
        manager=manager_bot.provider,
        managed=managed_bot_handler,
        recorder=interaction_recorder,
    )

    inbound_policy = providers.ThreadSafeSingleton(_inbound_policy, settings)
    inbound_guard = providers.ThreadSafeSingleton(
        InboundGuard,
        limiter=rate_limiter,
        cooldowns=cooldowns,
        outbox=outbox,
        policy=inbound_policy,
        actions=providers.Callable(_bot_actions, bot_directory),
    )
    # One thread per process renews every chat and outbox lock its workers hold while they work.
    lock_keeper = providers.ThreadSafeSingleton(LockKeeper)
    run_broadcast = providers.ThreadSafeSingleton(
        RunBroadcast,
        store=broadcast_store,
        admin=bot_admin,
        sender=sender.provider,
        slots=send_limiter,
        locks=locks,
        outbox=outbox,
        tokens=callback_tokens,
        clock=clock,
        blocked_users=blocked_users,
        policy=providers.Factory(BroadcastPolicy, lock_ttl_seconds=settings.provided.chat_lock_ttl_seconds),
        keeper=lock_keeper,
        events=event_recorder,
    )
    drain_outbox = providers.ThreadSafeSingleton(
        DrainOutbox,
        store=outbox_store,
        locks=locks,
        limiter=send_limiter,
        sender=sender.provider,
        dead_letters=dead_letters,
        policy=providers.Factory(OutboxPolicy, lock_ttl_seconds=settings.provided.chat_lock_ttl_seconds),
        lane=providers.ThreadSafeSingleton(_outbox_lane, redis_client),
        keeper=lock_keeper,
        blocked_users=blocked_users,
        links=inbox_links,
    )

    # The handler as the chat drain runs it: the replies it queues are sent right after, by the same worker.
    flushing_handler = providers.ThreadSafeSingleton(
        FlushingHandler,
        handler=handle_update.provider,
        drain_outbox=drain_outbox.provider,
        schedule=providers.ThreadSafeSingleton(DramatiqOutboxScheduler, broker),
    )
    drain_chat = providers.ThreadSafeSingleton(
        DrainChat,
        mailbox=mailbox,
        locks=locks,
        dedup=deduplicator,
        handler=flushing_handler.provider,
        dead_letters=dead_letters,
        clock=clock,
        guard=inbound_guard,
        lane=providers.ThreadSafeSingleton(
            _chat_lane, redis_client, settings.provided.dedup_ttl_seconds, envelope_signer, deferred_sent_marks
        ),
        keeper=lock_keeper,
        policy=providers.Factory(
            DrainPolicy,
            lock_ttl_seconds=settings.provided.chat_lock_ttl_seconds,
            max_attempts=settings.provided.update_max_attempts,
            min_backoff_seconds=settings.provided.update_min_backoff_seconds,
            max_backoff_seconds=settings.provided.update_max_backoff_seconds,
        ),
    )


def resolve_for_workers(container: DispatcherContainer) -> None:
    """Builds, on the calling thread, every singleton the actors resolve per message.

    Call it before the Dramatiq worker starts: the worker threads then only read built singletons, and
    the shared Resources (gRPC channels, the Redis client) are opened once, not raced by several threads.
    """
    container.mailbox()
    container.outbox()
    container.sender()
    container.manager_bot()
    container.interaction_recorder()
    container.handle_update()
    container.flushing_handler()
    container.drain_chat()
    container.drain_outbox()
    container.run_api_call()
    container.run_broadcast()
