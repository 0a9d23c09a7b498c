"""RegistryService over gRPC: validates input, runs use cases, maps domain errors to status codes.

The token in RegisterBotRequest never reaches a log line, an error message or an exception chain:
error details are fixed strings and aborts happen outside the `except` blocks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn, TypeVar

import grpc

from tgm.domain.administration.bot_administration import BotAdministration
from tgm.domain.administration.ports import (
    BlockedByUser,
    BlockUser,
    BotStats,
    Interaction,
    Registration,
    RemoveCommand,
    ResetLimits,
    SetApiCommand,
    SetCaptchaMode,
    SetCommand,
    SetCooldown,
    SetInboxMode,
    SetMaintenance,
    SetRateLimit,
    SettingsChange,
    SetWelcome,
    Subscriber,
    SubscriberStats,
    SubscriberStatus,
    UnblockUser,
)
from tgm.domain.administration.register_bot import RegisterBot, RegisterBotCommand
from tgm.domain.administration.setting_rules import InvalidSetting
from tgm.domain.bot_roles import BotRole, CoAdmin, Invite, role_in
from tgm.domain.bots import ApiCommand, Bot, BotStatus, BotToken
from tgm.domain.errors import (
    ActionNotPermitted,
    BotNotFound,
    BotOwnedByAnotherAdmin,
    ConcurrentUpdate,
    IllegalTransition,
    InvalidToken,
    TelegramRequestFailed,
    TelegramUnavailable,
    TokenRejected,
    VaultUnavailable,
)
from tgm.domain.events import (
    ADMIN_WORK_KINDS,
    MAX_LIST_LIMIT,
    Event,
    EventFilter,
    EventKind,
    EventTrail,
    Outcome,
    telegram_actor,
)
from tgm.domain.ports import BotRepository, Clock
from tgm.grpc_runtime.authorization import caller_identity
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.services.botregistry.errors import DuplicateBot
from tgm.services.botregistry.interaction_batches import MAX_BOT_ID_CHARS, InteractionBatches

logger = logging.getLogger(__name__)

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name

STATUS_TO_PROTO: dict[BotStatus, registry_pb2.BotStatus.ValueType] = {
    BotStatus.PENDING: registry_pb2.BOT_STATUS_PENDING,
    BotStatus.ACTIVE: registry_pb2.BOT_STATUS_ACTIVE,
    BotStatus.DISABLED: registry_pb2.BOT_STATUS_DISABLED,
    BotStatus.DELETED: registry_pb2.BOT_STATUS_DELETED,
    BotStatus.FAILED: registry_pb2.BOT_STATUS_FAILED,
}
PROTO_TO_STATUS: dict[registry_pb2.BotStatus.ValueType, BotStatus] = {v: k for k, v in STATUS_TO_PROTO.items()}

# Fixed, token-free details for each failure the caller can act on.
_REGISTER_ERRORS: tuple[tuple[type[Exception], grpc.StatusCode, str], ...] = (
    (TokenRejected, grpc.StatusCode.UNAUTHENTICATED, "Telegram rejected the token"),
    (BotOwnedByAnotherAdmin, grpc.StatusCode.ALREADY_EXISTS, "this bot is registered by another admin"),
    (TelegramUnavailable, grpc.StatusCode.UNAVAILABLE, "Telegram is unavailable; try again later"),
    (VaultUnavailable, grpc.StatusCode.UNAVAILABLE, "the vault is unavailable; try again later"),
    (TelegramRequestFailed, grpc.StatusCode.FAILED_PRECONDITION, "Telegram refused to set the webhook"),
    (DuplicateBot, grpc.StatusCode.ABORTED, "the bot was registered concurrently; try again"),
    (ConcurrentUpdate, grpc.StatusCode.ABORTED, "the bot changed concurrently; try again"),
    (InvalidToken, grpc.StatusCode.INVALID_ARGUMENT, "not a bot token"),
)
# Admin RPCs: NOT_FOUND is the one answer for "does not exist" and "is not yours".
NOT_PERMITTED_DETAILS = "only the bot's owner may do that"
_ADMIN_ERRORS: tuple[tuple[type[Exception], grpc.StatusCode, str], ...] = (
    (BotNotFound, grpc.StatusCode.NOT_FOUND, "no such bot"),
    (ActionNotPermitted, grpc.StatusCode.PERMISSION_DENIED, NOT_PERMITTED_DETAILS),
    (IllegalTransition, grpc.StatusCode.FAILED_PRECONDITION, "illegal state change"),
    (TokenRejected, grpc.StatusCode.UNAUTHENTICATED, "Telegram rejected the token"),
    (BotOwnedByAnotherAdmin, grpc.StatusCode.ALREADY_EXISTS, "this bot is registered by another admin"),
    (InvalidToken, grpc.StatusCode.INVALID_ARGUMENT, "not a bot token"),
    (TelegramUnavailable, grpc.StatusCode.UNAVAILABLE, "Telegram is unavailable; try again later"),
    (VaultUnavailable, grpc.StatusCode.UNAVAILABLE, "the vault is unavailable; try again later"),
    (TelegramRequestFailed, grpc.StatusCode.ABORTED, "Telegram refused the request"),
    (DuplicateBot, grpc.StatusCode.ABORTED, "the bot was registered concurrently; try again"),
    (ConcurrentUpdate, grpc.StatusCode.ABORTED, "the bot changed concurrently; try again"),
)
_T = TypeVar("_T")
# GetBotVersions: one call covers a dispatcher's whole bot cache in chunks of this many ids.
MAX_VERSION_IDS = 1000
# MarkSubscribersBlocked: entries per call (the dispatcher's reports come in batches).
MAX_BLOCKED_SUBSCRIBERS = 1000
# Trailing metadata naming an InvalidSetting's reason code (the manager bot shows the catalogue text for it).
REASON_METADATA_KEY = "tgm-reason"
# Callers that act for a Telegram user (the manager bot): the user is the actor. Anyone else (the operator's
# certificate, which acts as a bot's owner) is the actor itself. `anonymous`: TGM_INSECURE_DEV without TLS.
_ACTING_FOR_USERS = frozenset({"dispatcher", "embedded", "anonymous"})
# What another process may add to the trail (authorization.py decides which caller may add which).
EXTERNAL_EVENT_KINDS = frozenset({EventKind.CALLBACK_REFUSED, EventKind.KEY_ROTATED}) | ADMIN_WORK_KINDS
DEFAULT_EVENT_LIMIT = 100


def bot_to_proto(bot: Bot, *, with_sealed_token: bool = False) -> registry_pb2.Bot:
    """The Bot message; the sealed token only for GetBot (the dispatcher sends as the bot), never elsewhere."""
    return registry_pb2.Bot(
        bot_id=bot.id,
        public_id=bot.public_id,
        owner_id=bot.owner_id,
        telegram_bot_id=bot.telegram_bot_id,
        username=bot.username,
        status=STATUS_TO_PROTO[bot.status],
        welcome_text=bot.settings.welcome_text,
        maintenance_text=bot.settings.maintenance_text,
        blocked_users=dict(bot.settings.blocked_users),
        rate_limits={
            action: registry_pb2.RateLimit(limit=rule.limit, window_seconds=rule.window_seconds)
            for action, rule in bot.settings.rate_limits.items()
        },
        cooldowns=dict(bot.settings.cooldowns),
        captcha_mode=bot.settings.captcha_mode.value,
        inbox_enabled=bot.settings.inbox_enabled,
        sealed_token=bot.sealed_token if with_sealed_token else b"",
        language=bot.settings.language,
        is_manager=bot.is_manager,
        version=bot.version,
        custom_commands=dict(bot.settings.custom_commands),
        api_commands=[
            registry_pb2.ApiCommand(command=name, url=api.url, method=api.method, timeout_seconds=api.timeout_seconds)
            for name, api in sorted(bot.settings.api_commands.items())
        ],
    )


def stats_to_proto(stats: BotStats) -> registry_pb2.BotStats:
    return registry_pb2.BotStats(
        users_total=stats.users_total, users_today=stats.users_today, messages_today=stats.messages_today
    )


def subscriber_stats_to_proto(stats: SubscriberStats) -> registry_pb2.SubscriberStats:
    return registry_pb2.SubscriberStats(
        total=stats.total,
        active=stats.active,
        blocked_bot=stats.blocked_bot,
        blocked_by_admin=stats.blocked_by_admin,
        new_today=stats.new_today,
        new_7_days=stats.new_7_days,
    )


SUBSCRIBER_STATUS_TO_PROTO: dict[SubscriberStatus, registry_pb2.SubscriberStatus.ValueType] = {
    SubscriberStatus.ACTIVE: registry_pb2.SUBSCRIBER_STATUS_ACTIVE,
    SubscriberStatus.BLOCKED_BOT: registry_pb2.SUBSCRIBER_STATUS_BLOCKED_BOT,
    SubscriberStatus.BLOCKED_BY_ADMIN: registry_pb2.SUBSCRIBER_STATUS_BLOCKED_BY_ADMIN,
}


def subscriber_to_proto(item: Subscriber) -> registry_pb2.Subscriber:
    return registry_pb2.Subscriber(
        telegram_user_id=item.telegram_user_id,
        first_seen_unix_ms=int(item.first_seen.timestamp() * 1000),
        last_seen_unix_ms=int(item.last_seen.timestamp() * 1000),
        status=SUBSCRIBER_STATUS_TO_PROTO[item.status],
    )


def change_from_proto(request: registry_pb2.UpdateBotSettingsRequest) -> SettingsChange | None:
    which = request.WhichOneof("change")
    if which == "welcome_text":
        return SetWelcome(request.welcome_text)
    if which == "maintenance_text":
        return SetMaintenance(request.maintenance_text)
    if which == "block_user":
        return BlockUser(request.block_user.telegram_user_id, request.block_user.seconds)
    if which == "unblock_user":
        return UnblockUser(request.unblock_user)
    if which == "set_rate_limit":
        rule = request.set_rate_limit
        return SetRateLimit(rule.action, rule.limit, rule.window_seconds)
    if which == "set_cooldown":
        return SetCooldown(request.set_cooldown.action, request.set_cooldown.seconds)
    if which == "captcha_mode":
        return SetCaptchaMode(request.captcha_mode)
    if which == "inbox_enabled":
        return SetInboxMode(request.inbox_enabled)
    if which == "reset_limits":
        return ResetLimits() if request.reset_limits else None
    if which == "set_command":
        return SetCommand(request.set_command.command, request.set_command.reply)
    if which == "remove_command":
        return RemoveCommand(request.remove_command)
    if which == "set_api_command":
        api = request.set_api_command
        return SetApiCommand(
            api.command, ApiCommand(url=api.url, method=api.method or "GET", timeout_seconds=api.timeout_seconds or 5.0)
        )
    return None


# Past this (year 9999) a Unix-ms time cannot be a datetime; such a seen_at counts as "now", like any future one.
_MAX_UNIX_MS = 253_402_300_799_999
_NOW = datetime.max.replace(tzinfo=UTC)  # clamped to the registry's clock by InteractionBatches


def interaction_from_proto(entry: registry_pb2.Interaction) -> Interaction:
    ms = entry.seen_at_unix_ms
    seen_at = datetime.fromtimestamp(ms / 1000, UTC) if 0 < ms <= _MAX_UNIX_MS else _NOW
    return Interaction(
        bot_id=entry.bot_id,
        telegram_user_id=entry.telegram_user_id,
        language_code=entry.language_code or None,
        seen_at=seen_at,
        messages=entry.messages,
    )


def blocked_from_proto(entry: registry_pb2.BlockedSubscriber) -> BlockedByUser:
    ms = entry.blocked_at_unix_ms
    at = datetime.fromtimestamp(ms / 1000, UTC) if 0 < ms <= _MAX_UNIX_MS else _NOW  # clamped to now by the admin
    return BlockedByUser(bot_id=entry.bot_id, telegram_user_id=entry.telegram_user_id, at=at)


def actor_role(bot: Bot, actor_id: int) -> str:
    """The role an actor acted in (for the trail), once the registry allowed the action."""
    return (BotRole.OWNER if bot.owner_id == actor_id else BotRole.ADMIN).value


def co_admin_to_proto(admin: CoAdmin) -> registry_pb2.BotAdmin:
    return registry_pb2.BotAdmin(
        membership_id=admin.id,
        telegram_user_id=admin.telegram_user_id,
        added_by=admin.added_by,
        added_at_unix_ms=int(admin.added_at.timestamp() * 1000),
    )


def invite_to_proto(invite: Invite) -> registry_pb2.PendingInvite:
    return registry_pb2.PendingInvite(
        invite_id=invite.id,
        created_by=invite.created_by,
        created_at_unix_ms=int(invite.created_at.timestamp() * 1000),
        expires_at_unix_ms=int(invite.expires_at.timestamp() * 1000),
    )


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(
        self,
        register_bot: RegisterBot,
        bots: BotRepository,
        admin: BotAdministration | None = None,
        interactions: InteractionBatches | None = None,
        events: EventTrail | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._register_bot = register_bot
        self._bots = bots
        self._admin = admin
        self._interactions = interactions
        self._events = events
        self._clock = clock

    def _record(
        self,
        context: grpc.ServicerContext,
        kind: EventKind,
        actor_id: int,
        bot_id: str | None,
        outcome: Outcome = Outcome.DONE,
        **details: str,
    ) -> None:
        """Adds an admin action (done, or refused to a co-admin) to the trail. Not the vault's audit rule ("a failed
        audit write refuses the call"): the action has happened and stays done; a trail that cannot be written is
        logged, not fatal. Actions on a bot say the actor's role on it (`role`: owner or admin, issue 15)."""
        if self._events is None or self._clock is None:
            return
        try:
            caller = caller_identity(context)
            if caller in _ACTING_FOR_USERS:
                actor = telegram_actor(actor_id)
            else:
                actor, details = caller, {**details, "as_owner": str(actor_id)}
            self._events.record(Event(self._clock.now(), kind, actor, bot_id, outcome, {**details, "via": caller}))
        except Exception as error:
            logger.error(
                "event not recorded", extra={"kind": kind.value, "bot_id": bot_id, "error": type(error).__name__}
            )

    def _run_admin(self, context: grpc.ServicerContext, operation: str, call: Callable[[BotAdministration], _T]) -> _T:
        """Runs one admin operation; domain errors become fixed, token-free status details."""
        if self._admin is None:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, "admin operations are not configured")
        admin = self._admin
        failure: tuple[grpc.StatusCode, str] | None = None
        try:
            return call(admin)
        except InvalidSetting as error:
            context.set_trailing_metadata(((REASON_METADATA_KEY, error.code),))
            failure = (grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except ActionNotPermitted as error:
            # A co-admin tried what only the owner may: worth an operator's eye, like a refused button.
            refused = {"action": error.action, "role": error.role}
            self._record(context, EventKind.ACTION_REFUSED, error.actor_id, error.bot_id, Outcome.REFUSED, **refused)
            failure = _classify_admin(operation, error)
        except Exception as error:
            failure = _classify_admin(operation, error)
        _abort(context, *failure)  # outside the except blocks: no exception chain travels with the abort

    def _registered(self, operation: str, registration: Registration) -> registry_pb2.Bot:
        bot = registration.bot
        logger.info(
            operation,
            extra={
                "bot_id": bot.id,
                "owner_id": bot.owner_id,
                "telegram_bot_id": bot.telegram_bot_id,
                "refreshed": registration.refreshed,
            },
        )
        return bot_to_proto(bot)

    def RegisterBot(
        self, request: registry_pb2.RegisterBotRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RegisterBotResponse:
        if request.owner_id <= 0:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "owner_id must be a positive Telegram user id")
        if request.WhichOneof("credential") == "sealed_token":
            sealed = request.sealed_token
            registration = self._run_admin(
                context,
                "register sealed",
                lambda admin: admin.register_sealed(
                    request.owner_id, sealed.ciphertext, sealed.sealed_by_bot_id, sealed.chat_id
                ),
            )
            self._record(
                context,
                EventKind.BOT_ADDED,
                request.owner_id,
                registration.bot.id,
                refreshed=str(registration.refreshed).lower(),
                role=BotRole.OWNER.value,
            )
            return registry_pb2.RegisterBotResponse(
                bot=self._registered("bot registered", registration), refreshed=registration.refreshed
            )
        token: BotToken | None = None
        with contextlib.suppress(InvalidToken):
            token = BotToken(request.token)
        if token is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "not a bot token")
        failure: tuple[grpc.StatusCode, str] | None = None
        bot: Bot | None = None
        refreshed = False
        try:
            bot, refreshed = self._register_bot.register(RegisterBotCommand(owner_id=request.owner_id, token=token))
        except Exception as error:
            failure = self._classify(error, token)
        if failure is not None or bot is None:
            code, details = failure or (grpc.StatusCode.INTERNAL, "internal error")
            _abort(context, code, details)
        logger.info(
            "bot registered",
            extra={"bot_id": bot.id, "owner_id": bot.owner_id, "telegram_bot_id": bot.telegram_bot_id},
        )
        self._record(
            context,
            EventKind.BOT_ADDED,
            request.owner_id,
            bot.id,
            refreshed=str(refreshed).lower(),
            role=BotRole.OWNER.value,
        )
        return registry_pb2.RegisterBotResponse(bot=bot_to_proto(bot), refreshed=refreshed)

    @staticmethod
    def _classify(error: Exception, token: BotToken) -> tuple[grpc.StatusCode, str]:
        for error_type, code, details in _REGISTER_ERRORS:
            if isinstance(error, error_type):
                logger.warning(
                    "register bot refused",
                    extra={"error": type(error).__name__, "telegram_bot_id": token.telegram_bot_id},
                )
                return code, details
        # Unexpected: log the class only; its message could quote a URL that carries the token.
        logger.error(
            "register bot failed unexpectedly",
            extra={"error": type(error).__name__, "telegram_bot_id": token.telegram_bot_id},
        )
        return grpc.StatusCode.INTERNAL, "internal error"

    def GetRoute(
        self, request: registry_pb2.GetRouteRequest, context: grpc.ServicerContext
    ) -> registry_pb2.GetRouteResponse:
        bot = self._bots.by_public_id(request.public_id) if request.public_id else None
        if bot is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "no bot with that public_id")
        return registry_pb2.GetRouteResponse(
            bot_id=bot.id,
            status=STATUS_TO_PROTO[bot.status],
            webhook_secret_sha256=bot.webhook_secret_sha256,
            is_manager=bot.is_manager,
            version=bot.version,
        )

    def GetBot(self, request: registry_pb2.GetBotRequest, context: grpc.ServicerContext) -> registry_pb2.GetBotResponse:
        bot = self._bots.get(request.bot_id) if request.bot_id else None
        if bot is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "no bot with that id")
        return registry_pb2.GetBotResponse(bot=bot_to_proto(bot, with_sealed_token=True))

    def GetBotVersions(
        self, request: registry_pb2.GetBotVersionsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.GetBotVersionsResponse:
        if len(request.bot_ids) > MAX_VERSION_IDS:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_VERSION_IDS} bot ids per call")
        wanted = [bot_id for bot_id in request.bot_ids if 0 < len(bot_id) <= MAX_BOT_ID_CHARS]
        return registry_pb2.GetBotVersionsResponse(versions=self._bots.versions(wanted))

    def ListBots(
        self, request: registry_pb2.ListBotsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListBotsResponse:
        if request.owner_id <= 0:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "owner_id must be a positive Telegram user id")
        if self._admin is not None:
            bots = self._admin.list_bots(request.owner_id)
        else:
            bots = self._bots.list_by_owner(request.owner_id)
        return registry_pb2.ListBotsResponse(bots=[bot_to_proto(bot) for bot in bots])

    # -- admin RPCs (tenant isolation: BotAdministration answers BotNotFound for others' bots) ----------

    @staticmethod
    def _check_actor(context: grpc.ServicerContext, actor_id: int) -> None:
        if actor_id <= 0:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "actor_id must be a positive Telegram user id")

    def RegisterManagedBot(
        self, request: registry_pb2.RegisterManagedBotRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RegisterManagedBotResponse:
        self._check_actor(context, request.owner_id)
        if request.managed_bot_user_id <= 0:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "managed_bot_user_id must be a positive id")
        registration = self._run_admin(
            context,
            "register managed",
            lambda admin: admin.register_managed(request.owner_id, request.managed_bot_user_id),
        )
        self._record(
            context,
            EventKind.BOT_ADDED,
            request.owner_id,
            registration.bot.id,
            refreshed=str(registration.refreshed).lower(),
            managed="true",
            role=BotRole.OWNER.value,
        )
        return registry_pb2.RegisterManagedBotResponse(
            bot=self._registered("managed bot registered", registration), refreshed=registration.refreshed
        )

    def GetBotDetails(
        self, request: registry_pb2.GetBotDetailsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.GetBotDetailsResponse:
        self._check_actor(context, request.actor_id)
        bot, stats = self._run_admin(context, "details", lambda admin: admin.details(request.actor_id, request.bot_id))
        return registry_pb2.GetBotDetailsResponse(bot=bot_to_proto(bot), stats=stats_to_proto(stats))

    def SetBotStatus(
        self, request: registry_pb2.SetBotStatusRequest, context: grpc.ServicerContext
    ) -> registry_pb2.SetBotStatusResponse:
        self._check_actor(context, request.actor_id)
        bot = self._run_admin(
            context, "set status", lambda admin: admin.set_enabled(request.actor_id, request.bot_id, request.enabled)
        )
        logger.info("bot status changed", extra={"bot_id": bot.id, "status": bot.status.value})
        kind = EventKind.BOT_ENABLED if request.enabled else EventKind.BOT_DISABLED
        self._record(context, kind, request.actor_id, bot.id, role=actor_role(bot, request.actor_id))
        return registry_pb2.SetBotStatusResponse(bot=bot_to_proto(bot))

    def RotateWebhookSecret(
        self, request: registry_pb2.RotateWebhookSecretRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RotateWebhookSecretResponse:
        self._check_actor(context, request.actor_id)
        bot = self._run_admin(context, "rotate", lambda admin: admin.rotate_secret(request.actor_id, request.bot_id))
        logger.info("webhook secret rotated", extra={"bot_id": bot.id})
        self._record(
            context, EventKind.SECRET_ROTATED, request.actor_id, bot.id, role=actor_role(bot, request.actor_id)
        )
        return registry_pb2.RotateWebhookSecretResponse(bot=bot_to_proto(bot))

    def DeleteBot(
        self, request: registry_pb2.DeleteBotRequest, context: grpc.ServicerContext
    ) -> registry_pb2.DeleteBotResponse:
        self._check_actor(context, request.actor_id)
        bot = self._run_admin(context, "delete", lambda admin: admin.delete(request.actor_id, request.bot_id))
        logger.info("bot deleted", extra={"bot_id": bot.id})
        self._record(context, EventKind.BOT_DELETED, request.actor_id, bot.id, role=actor_role(bot, request.actor_id))
        return registry_pb2.DeleteBotResponse(bot=bot_to_proto(bot))

    def UpdateBotSettings(
        self, request: registry_pb2.UpdateBotSettingsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.UpdateBotSettingsResponse:
        self._check_actor(context, request.actor_id)
        change = change_from_proto(request)
        if change is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "no change given")
        bot = self._run_admin(
            context, "update settings", lambda admin: admin.update_settings(request.actor_id, request.bot_id, change)
        )
        logger.info("bot settings changed", extra={"bot_id": bot.id, "change": type(change).__name__})
        # The kind of change only: a welcome text, a command's reply or an API URL is the admin's content.
        role = actor_role(bot, request.actor_id)
        # The inbox's state is a switch, not content: which way it went is said (issue 15).
        extra = {"inbox": "on" if change.enabled else "off"} if isinstance(change, SetInboxMode) else {}
        details = {"change": type(change).__name__, "role": role, **extra}
        self._record(context, EventKind.SETTINGS_CHANGED, request.actor_id, bot.id, Outcome.DONE, **details)
        return registry_pb2.UpdateBotSettingsResponse(bot=bot_to_proto(bot))

    def RecordInteraction(
        self, request: registry_pb2.RecordInteractionRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RecordInteractionResponse:
        if not request.bot_id or len(request.bot_id) > 64:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "bot_id is required")

        def record(admin: BotAdministration) -> registry_pb2.RecordInteractionResponse:
            admin.record_interaction(request.bot_id, request.telegram_user_id, request.language_code)
            return registry_pb2.RecordInteractionResponse()

        return self._run_admin(context, "record interaction", record)

    def GetSubscriberStats(
        self, request: registry_pb2.GetSubscriberStatsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.GetSubscriberStatsResponse:
        self._check_actor(context, request.actor_id)
        bot, stats = self._run_admin(
            context, "subscriber stats", lambda admin: admin.subscriber_stats(request.actor_id, request.bot_id)
        )
        return registry_pb2.GetSubscriberStatsResponse(bot=bot_to_proto(bot), stats=subscriber_stats_to_proto(stats))

    def MarkSubscribersBlocked(
        self, request: registry_pb2.MarkSubscribersBlockedRequest, context: grpc.ServicerContext
    ) -> registry_pb2.MarkSubscribersBlockedResponse:
        if len(request.subscribers) > MAX_BLOCKED_SUBSCRIBERS:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_BLOCKED_SUBSCRIBERS} subscribers per call")
        entries = [blocked_from_proto(entry) for entry in request.subscribers]
        marked = self._run_admin(context, "mark subscribers blocked", lambda admin: admin.mark_blocked(entries))
        return registry_pb2.MarkSubscribersBlockedResponse(marked=marked)

    def ListSubscribers(
        self, request: registry_pb2.ListSubscribersRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListSubscribersResponse:
        self._check_actor(context, request.actor_id)
        actor, bot_id, after, limit = request.actor_id, request.bot_id, request.after_user_id, request.limit
        page = self._run_admin(
            context, "list subscribers", lambda admin: admin.list_subscribers(actor, bot_id, after, limit)
        )
        full = len(page) == limit  # maybe more after it
        return registry_pb2.ListSubscribersResponse(
            subscribers=[subscriber_to_proto(item) for item in page],
            next_after_user_id=page[-1].telegram_user_id if page and full else 0,
        )

    def RecordInteractions(
        self, request: registry_pb2.RecordInteractionsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RecordInteractionsResponse:
        if self._interactions is None:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, "interaction batches are not configured")
        batches = self._interactions
        if len(request.interactions) > batches.max_batch:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"at most {batches.max_batch} interactions per call")
        entries = [interaction_from_proto(entry) for entry in request.interactions]
        failure: tuple[grpc.StatusCode, str] | None = None
        try:
            result = batches.record(entries)
        except Exception as error:
            failure = _classify_admin("record interactions", error)
        if failure is not None:
            _abort(context, *failure)  # outside the except block: no exception chain travels with the abort
        return registry_pb2.RecordInteractionsResponse(
            stored=result.stored,
            skipped_unknown_bot=result.skipped_unknown_bot,
            skipped_invalid=result.skipped_invalid,
        )

    # -- co-admins (issue 15): BotAdministration checks the actor's role ---------------------------------

    def CreateInvite(
        self, request: registry_pb2.CreateInviteRequest, context: grpc.ServicerContext
    ) -> registry_pb2.CreateInviteResponse:
        self._check_actor(context, request.actor_id)
        issued = self._run_admin(
            context, "create invite", lambda admin: admin.create_invite(request.actor_id, request.bot_id)
        )
        bot_id, invite_id = issued.bot.id, issued.invite_id
        logger.info("invite created", extra={"bot_id": bot_id, "invite_id": invite_id})
        self._record(
            context, EventKind.INVITE_CREATED, request.actor_id, bot_id, invite=invite_id, role=BotRole.OWNER.value
        )
        return registry_pb2.CreateInviteResponse(
            bot=bot_to_proto(issued.bot),
            invite_id=invite_id,
            code=issued.code,
            link=issued.link,
            expires_at_unix_ms=int(issued.expires_at.timestamp() * 1000),
        )

    def RedeemInvite(
        self, request: registry_pb2.RedeemInviteRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RedeemInviteResponse:
        self._check_actor(context, request.actor_id)
        bot = self._run_admin(
            context, "redeem invite", lambda admin: admin.redeem_invite(request.actor_id, request.code)
        )
        logger.info("invite redeemed", extra={"bot_id": bot.id, "admin_id": request.actor_id})
        self._record(context, EventKind.INVITE_REDEEMED, request.actor_id, bot.id, role=BotRole.ADMIN.value)
        return registry_pb2.RedeemInviteResponse(bot=bot_to_proto(bot))

    def ListBotAdmins(
        self, request: registry_pb2.ListBotAdminsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListBotAdminsResponse:
        self._check_actor(context, request.actor_id)
        bot, admins, invites = self._run_admin(
            context, "list admins", lambda admin: admin.admins(request.actor_id, request.bot_id)
        )
        return registry_pb2.ListBotAdminsResponse(
            bot=bot_to_proto(bot),
            admins=[co_admin_to_proto(item) for item in admins],
            invites=[invite_to_proto(item) for item in invites],
        )

    def RevokeBotAdmin(
        self, request: registry_pb2.RevokeBotAdminRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RevokeBotAdminResponse:
        self._check_actor(context, request.actor_id)
        bot, removed = self._run_admin(
            context, "revoke admin", lambda admin: admin.revoke_admin(request.actor_id, request.membership_id)
        )
        logger.info("admin revoked", extra={"bot_id": bot.id, "admin_id": removed.telegram_user_id})
        left = removed.telegram_user_id == request.actor_id
        kind = EventKind.ADMIN_LEFT if left else EventKind.ADMIN_REVOKED
        role = actor_role(bot, request.actor_id)
        self._record(context, kind, request.actor_id, bot.id, admin=str(removed.telegram_user_id), role=role)
        return registry_pb2.RevokeBotAdminResponse(bot=bot_to_proto(bot), admin=co_admin_to_proto(removed))

    def RevokeInvite(
        self, request: registry_pb2.RevokeInviteRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RevokeInviteResponse:
        self._check_actor(context, request.actor_id)
        bot = self._run_admin(
            context, "revoke invite", lambda admin: admin.revoke_invite(request.actor_id, request.invite_id)
        )
        invite_id, role = request.invite_id, BotRole.OWNER.value
        logger.info("invite revoked", extra={"bot_id": bot.id, "invite_id": invite_id})
        self._record(context, EventKind.INVITE_REVOKED, request.actor_id, bot.id, invite=invite_id, role=role)
        return registry_pb2.RevokeInviteResponse(bot=bot_to_proto(bot))

    def LeaveBot(
        self, request: registry_pb2.LeaveBotRequest, context: grpc.ServicerContext
    ) -> registry_pb2.LeaveBotResponse:
        self._check_actor(context, request.actor_id)
        bot = self._run_admin(context, "leave bot", lambda admin: admin.leave(request.actor_id, request.bot_id))
        logger.info("admin left", extra={"bot_id": bot.id, "admin_id": request.actor_id})
        self._record(context, EventKind.ADMIN_LEFT, request.actor_id, bot.id, role=BotRole.ADMIN.value)
        return registry_pb2.LeaveBotResponse(bot=bot_to_proto(bot))

    def GetBotTeam(
        self, request: registry_pb2.GetBotTeamRequest, context: grpc.ServicerContext
    ) -> registry_pb2.GetBotTeamResponse:
        team = self._run_admin(context, "bot team", lambda admin: admin.team(request.bot_id))
        return registry_pb2.GetBotTeamResponse(
            owner_id=team.bot.owner_id, admin_ids=[item.telegram_user_id for item in team.admins]
        )

    # -- the event trail -----------------------------------------------------------------------------

    def RecordEvent(
        self, request: registry_pb2.RecordEventRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RecordEventResponse:
        if self._events is None or self._clock is None:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, "the event trail is not configured")
        trail, clock = self._events, self._clock
        event: Event | None = None
        with contextlib.suppress(ValueError):  # an unknown kind or outcome, unsafe details (UnsafeEventDetails)
            kind = EventKind(request.kind)
            admin_work = kind in ADMIN_WORK_KINDS
            if admin_work and not (request.telegram_user_id > 0 and request.bot_id):
                raise ValueError("an admin's work names the admin and the bot")
            if kind in EXTERNAL_EVENT_KINDS and request.telegram_user_id >= 0:
                caller = caller_identity(context)
                actor = telegram_actor(request.telegram_user_id) if request.telegram_user_id > 0 else caller
                details = {**request.details, "via": caller}
                if admin_work:  # the role from the registry's own records, whatever the caller said
                    details["role"] = self._role_now(request.bot_id, request.telegram_user_id)
                bot_id = request.bot_id or None
                event = Event(clock.now(), kind, actor, bot_id, Outcome(request.outcome), details)
        if event is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "not an event another service may record")
        failure: tuple[grpc.StatusCode, str] | None = None
        try:
            trail.record(event)
        except Exception as error:
            failure = _classify_admin("record event", error)
        if failure is not None:
            _abort(context, *failure)
        return registry_pb2.RecordEventResponse()

    def _role_now(self, bot_id: str, user_id: int) -> str:
        """The user's role on the bot as the trail records it: owner, admin, or none (revoked since, or never)."""
        try:
            team = self._admin.team(bot_id) if self._admin is not None else None
        except Exception:  # gone, or the database failed: the event still says who and what
            team = None
        if team is None:
            return "unknown"
        role = role_in(team.bot, user_id, frozenset(admin.telegram_user_id for admin in team.admins))
        return role.value if role is not None else "none"

    def ListEvents(
        self, request: registry_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListEventsResponse:
        if self._events is None:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, "the event trail is not configured")
        if not 0 <= request.limit <= MAX_LIST_LIMIT or request.since_unix_ms < 0 or len(request.bot_id) > 36:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"limit is 1-{MAX_LIST_LIMIT}, since is not negative")
        since_ms = min(request.since_unix_ms, _MAX_UNIX_MS)
        query = EventFilter(
            bot_id=request.bot_id or None,
            since=datetime.fromtimestamp(since_ms / 1000, UTC) if since_ms > 0 else None,
            limit=request.limit or DEFAULT_EVENT_LIMIT,
        )
        return registry_pb2.ListEventsResponse(events=[event_to_proto(event) for event in self._events.recent(query)])


def event_to_proto(event: Event) -> registry_pb2.Event:
    return registry_pb2.Event(
        at_unix_ms=int(event.at.timestamp() * 1000),
        kind=event.kind.value,
        actor=event.actor,
        bot_id=event.bot_id or "",
        outcome=event.outcome.value,
        details=dict(event.details),
    )


def _classify_admin(operation: str, error: Exception) -> tuple[grpc.StatusCode, str]:
    for error_type, code, details in _ADMIN_ERRORS:
        if isinstance(error, error_type):
            logger.info("admin operation refused", extra={"operation": operation, "error": type(error).__name__})
            return code, details
    # Unexpected: the class only; its message could quote a URL that carries a token.
    logger.error("admin operation failed unexpectedly", extra={"operation": operation, "error": type(error).__name__})
    return grpc.StatusCode.INTERNAL, "internal error"
