"""The dispatcher's composition root: the only place where adapters are chosen.

The Telegram and vault clients are imported lazily so this module loads without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import dramatiq
import grpc
from dependency_injector import containers, providers

from tgm.domain.bots import RateRule
from tgm.domain.captcha import CaptchaGuard, CaptchaPolicy
from tgm.domain.clock import SystemClock
from tgm.domain.inbound import BotActions, InboundGuard, InboundPolicy
from tgm.domain.inbox import LINK_TTL_SECONDS, FeedbackInbox
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.ports import TelegramApi, TokenVault
from tgm.domain.use_cases.broadcast import BroadcastPolicy, RunBroadcast
from tgm.domain.use_cases.drain_chat import DrainChat, DrainPolicy
from tgm.domain.use_cases.handle_update import HandleUpdate
from tgm.domain.use_cases.run_api_call import RetryPolicy, RunApiCall, StartApiCall
from tgm.grpc_runtime.channels import open_channel
from tgm.host.lock_keeper import running_lock_keeper
from tgm.messaging.envelope_signing import signer_from_key
from tgm.messaging.mailbox import RedisChatMailbox, in_memory_mailbox_for
from tgm.registry_client.admin import GrpcBotAdmin
from tgm.registry_client.client import GrpcBotDirectory
from tgm.registry_client.events import BackgroundEventRecorder, GrpcEventRecorder
from tgm.services.dispatcher.adapters import (
    bot_changes,
    broadcasts,
    interaction_stats,
    memory,
    redis_abuse,
    subscribers,
)
from tgm.services.dispatcher.adapters import bot_teams as bot_teams_adapter
from tgm.services.dispatcher.adapters.captcha_store import InMemoryCaptchaStore, RedisCaptchaStore
from tgm.services.dispatcher.adapters.dead_letters import RedisDeadLetters
from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox
from tgm.services.dispatcher.adapters.external_api import HttpExternalApi
from tgm.services.dispatcher.adapters.inbox_links import InMemoryInboxLinks, RedisInboxLinks
from tgm.services.dispatcher.adapters.redis_chat_lane import RedisChatLane
from tgm.services.dispatcher.adapters.redis_dedup import RedisUpdateDeduplicator
from tgm.services.dispatcher.adapters.sent_marks import DeferredSentMarks
from tgm.services.dispatcher.manager_bot import state as manager_state
from tgm.services.dispatcher.manager_bot import wiring as manager_wiring
from tgm.services.dispatcher.manager_bot.router import UpdateRouter
from tgm.services.dispatcher.outbound.direct_send import DirectSend
from tgm.services.dispatcher.outbound.drain import DrainOutbox, OutboxPolicy
from tgm.services.dispatcher.outbound.flushing_handler import FlushingHandler
from tgm.services.dispatcher.outbound.outbox_lane import RedisOutboxLane
from tgm.services.dispatcher.outbound.queued_outbox import QueuedOutbox
from tgm.services.dispatcher.outbound.scheduling import DramatiqOutboxScheduler
from tgm.services.dispatcher.outbound.send_gate import ComposedDirectSendGate, RedisDirectSendGate
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore, RedisOutboxStore
from tgm.services.dispatcher.presentation.broadcast_view import TelegramBroadcastView
from tgm.services.dispatcher.presentation.chat_view import TelegramChatView
from tgm.services.dispatcher.presentation.inbox_view import TelegramInboxView
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView
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
    import redis

    client = redis.Redis.from_url(url)
    try:
        yield client
    finally:
        client.close()


def _deferred_sent_marks(store: RedisOutboxStore, defer: bool) -> DeferredSentMarks | None:
    """With DEFER_SENT_MARKS a direct send's mark rides on the update's completion script (Redis only); otherwise
    (the default) it is written at once."""
    return DeferredSentMarks(store.mark_sent) if defer else None


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
    # Where shared state lives, chosen once (DispatcherSettings.backend): every adapter below with a Redis and an
    # in-memory form is a Selector on it. Tests override this, or a provider, instead of probing adapters.
    backend = settings.provided.backend
    # No client at all in memory: the Redis adapters are never built there (the external APIs' circuit breakers
    # then keep their state per process).
    redis_client = providers.Selector(
        backend,
        redis=providers.Resource(_redis_client, settings.provided.redis_url),
        memory=providers.Object(None),
    )

    bot_directory = providers.ThreadSafeSingleton(
        GrpcBotDirectory, channel=registry_channel, ttl_seconds=settings.provided.bot_cache_ttl_seconds, clock=clock
    )
    telegram = providers.ThreadSafeSingleton(
        _telegram_api, settings.provided.telegram_api_base_url, settings.provided.telegram_timeout_seconds
    )
    vault = providers.ThreadSafeSingleton(_token_vault, vault_channel)
    deduplicator = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(
            RedisUpdateDeduplicator, redis_client, ttl_seconds=settings.provided.dedup_ttl_seconds
        ),
        memory=providers.ThreadSafeSingleton(
            memory.InMemoryUpdateDeduplicator, ttl_seconds=settings.provided.dedup_ttl_seconds
        ),
    )

    locks = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(redis_abuse.RedisLocks, redis_client),
        memory=providers.ThreadSafeSingleton(memory.InMemoryLocks),
    )
    rate_limiter = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(redis_abuse.RedisRateLimiter, redis_client),
        memory=providers.ThreadSafeSingleton(memory.InMemoryRateLimiter),
    )
    cooldowns = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(redis_abuse.RedisCooldowns, redis_client),
        memory=providers.ThreadSafeSingleton(memory.InMemoryCooldowns),
    )
    dead_letters = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(RedisDeadLetters, redis_client),
        memory=providers.ThreadSafeSingleton(memory.InMemoryDeadLetters),
    )
    _send_windows: ClassVar[dict[str, Any]] = dict(
        per_bot_per_second=settings.provided.outbound_per_bot_per_second,
        per_chat_per_second=settings.provided.outbound_per_chat_per_second,
        per_group_per_minute=settings.provided.outbound_per_group_per_minute,
        margin=settings.provided.outbound_window_margin,
        reserved_for_replies=settings.provided.broadcast_reserved_per_second,
    )
    send_limiter = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(redis_abuse.RedisSendLimiter, redis_client, **_send_windows),
        memory=providers.ThreadSafeSingleton(memory.InMemorySendLimiter, **_send_windows),
    )
    outbox_store = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(RedisOutboxStore, redis_client),
        memory=providers.ThreadSafeSingleton(InMemoryOutboxStore),
    )
    envelope_signer = providers.ThreadSafeSingleton(signer_from_key, settings.provided.envelope_signing_key)
    # On Redis the gateway's mailboxes (tagged by its signer); in memory the one mailbox per broker that an embedded
    # process's gateway pushes to.
    mailbox = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(RedisChatMailbox, redis_client, signer=envelope_signer),
        memory=providers.ThreadSafeSingleton(in_memory_mailbox_for, broker),
    )

    # Sends one queued call with the bot's token, opened in the vault (kept in memory for a minute at most).
    sender = providers.ThreadSafeSingleton(
        DirectOutbox, bots=bot_directory, vault=vault, telegram=telegram, clock=clock
    )
    deferred_sent_marks = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(_deferred_sent_marks, outbox_store, settings.provided.defer_sent_marks),
        memory=providers.Object(None),
    )
    # Users who blocked a bot (403 on a send), reported to the registry: the subscribers' "blocked the bot" status.
    registry_admin = providers.ThreadSafeSingleton(GrpcBotAdmin, channel=registry_channel)
    # Inbox deliveries linked to their users once sent (src/tgm/domain/inbox.py).
    inbox_links = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(RedisInboxLinks, redis_client),
        memory=providers.ThreadSafeSingleton(InMemoryInboxLinks, clock=clock),
    )
    blocked_users = providers.ThreadSafeSingleton(subscribers.RegistryBlockedUsers, sink=registry_admin, clock=clock)
    direct_send = providers.ThreadSafeSingleton(
        DirectSend,
        # One round trip on Redis (lane, sent mark and send slot in one script); composed of the ports in memory.
        gate=providers.Selector(
            backend,
            redis=providers.ThreadSafeSingleton(RedisDirectSendGate, redis_client, send_limiter),
            memory=providers.ThreadSafeSingleton(ComposedDirectSendGate, outbox_store, send_limiter),
        ),
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
    _captcha_windows: ClassVar[dict[str, Any]] = dict(
        new_users_per_minute=settings.provided.captcha_new_users_per_minute,
        attack_seconds=settings.provided.captcha_attack_seconds,
        warmup_seconds=settings.provided.captcha_warmup_seconds,
    )
    captcha_store = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(RedisCaptchaStore, redis_client, **_captcha_windows),
        memory=providers.ThreadSafeSingleton(InMemoryCaptchaStore, clock, **_captcha_windows),
    )
    # How a hosted bot's own messages look (the CAPTCHA's): src/tgm/services/dispatcher/presentation/.
    chat_view = providers.ThreadSafeSingleton(TelegramChatView, outbox)
    captcha = providers.ThreadSafeSingleton(
        CaptchaGuard,
        store=captcha_store,
        tokens=callback_tokens,
        view=chat_view,
        policy=providers.Factory(
            CaptchaPolicy,
            max_attempts=settings.provided.captcha_max_attempts,
            lock_seconds=settings.provided.captcha_lock_seconds,
        ),
    )
    # Who runs each bot (the inbox's admins); forgotten with the bot on every announced change (bot_changes.py).
    bot_teams = providers.ThreadSafeSingleton(bot_teams_adapter.registry_teams, registry_channel, clock)
    bot_caches = providers.ThreadSafeSingleton(bot_teams_adapter.ForgetEverywhere, bot_directory, bot_teams)
    # The manager bot (issue 3): its handler, wiring and state adapters live in src/tgm/services/dispatcher/manager_bot.
    # Changes made through the manager reach every process's bot cache at once (adapters/bot_changes.py).
    bot_admin = providers.ThreadSafeSingleton(
        bot_changes.AnnouncingBotAdmin,
        admin=registry_admin,
        announce=providers.Selector(
            backend,
            redis=providers.ThreadSafeSingleton(bot_changes.announcer, redis_client, bot_caches),
            memory=providers.ThreadSafeSingleton(bot_changes.local_announcer, bot_caches),
        ),
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
        view=providers.ThreadSafeSingleton(TelegramInboxView, outbox),
        tokens=providers.ThreadSafeSingleton(_inbox_tokens, settings, clock),
        admin=bot_admin,  # blocks from the inbox reach every process's bot cache at once, as the manager's do
        cooldowns=cooldowns,
        teams=bot_teams,
        events=event_recorder,
        clock=clock,
        backlog=outbox,
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
    # Redis (AOF: a broadcast resumes after any crash), else memory (embedded: one process).
    broadcast_store = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(broadcasts.RedisBroadcastStore, redis_client),
        memory=providers.ThreadSafeSingleton(broadcasts.InMemoryBroadcastStore),
    )
    broadcast_scheduler = providers.ThreadSafeSingleton(DramatiqBroadcastScheduler, broker)
    manager_bot = providers.ThreadSafeSingleton(
        ManagerBot,
        admin=bot_admin,
        # The manager bot decides what to say; this renders it as Telegram HTML and keyboards (docs/adr/007).
        view=providers.ThreadSafeSingleton(TelegramManagerView, outbox),
        tokens=callback_tokens,
        conversations=providers.Selector(
            backend,
            redis=providers.ThreadSafeSingleton(manager_state.RedisConversationStore, redis_client),
            memory=providers.ThreadSafeSingleton(manager_state.InMemoryConversationStore),
        ),
        sessions=providers.Selector(
            backend,
            redis=providers.ThreadSafeSingleton(manager_state.RedisAdminSessions, redis_client),
            memory=providers.ThreadSafeSingleton(manager_state.InMemoryAdminSessions),
        ),
        used_buttons=providers.Selector(
            backend,
            redis=providers.ThreadSafeSingleton(manager_state.RedisUsedButtons, redis_client),
            memory=providers.ThreadSafeSingleton(manager_state.InMemoryUsedButtons),
        ),
        config=providers.ThreadSafeSingleton(manager_wiring.manager_config_from, settings),
        events=event_recorder,
        clock=clock,
        broadcasts=broadcast_store,
        broadcast_scheduler=broadcast_scheduler,
        inbox_links=inbox_links,
        bot_teams=bot_teams,
    )
    # Per-update stats: one Redis write (or a dict update embedded); a flusher thread batches them to the registry.
    # The object is both the router's recorder and the flusher's pending store. On Redis each process's spilling
    # front feeds the shared buffer; in memory (embedded: one process) the buffer is the recorder.
    interaction_recorder = providers.Selector(
        backend,
        redis=providers.ThreadSafeSingleton(
            interaction_stats.SpillingRecorder,
            providers.ThreadSafeSingleton(interaction_stats.RedisInteractionBuffer, redis_client),
        ),
        memory=providers.ThreadSafeSingleton(interaction_stats.InMemoryInteractionBuffer),
    )
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
    # One thread per process renews every chat, outbox and broadcast lock its workers hold while they work: the
    # domain's keeper holds the schedule, this Resource owns its thread (started on first use, stopped at shutdown).
    lock_keeper_thread = providers.Resource(running_lock_keeper)
    lock_keeper = lock_keeper_thread.provided.keeper
    run_broadcast = providers.ThreadSafeSingleton(
        RunBroadcast,
        store=broadcast_store,
        admin=bot_admin,
        sender=sender.provider,
        slots=send_limiter,
        locks=locks,
        view=providers.ThreadSafeSingleton(TelegramBroadcastView, outbox),
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
        # On Redis one Lua script per outbox drain step; None lets DrainOutbox compose it from store and locks.
        lane=providers.Selector(
            backend, redis=providers.ThreadSafeSingleton(RedisOutboxLane, redis_client), memory=providers.Object(None)
        ),
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
        # On Redis one Lua script per drain step; None lets DrainChat compose the lane from the in-memory ports.
        lane=providers.Selector(
            backend,
            redis=providers.ThreadSafeSingleton(
                RedisChatLane,
                redis_client,
                dedup_ttl_seconds=settings.provided.dedup_ttl_seconds,
                signer=envelope_signer,
                sent_marks=deferred_sent_marks,
            ),
            memory=providers.Object(None),
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
