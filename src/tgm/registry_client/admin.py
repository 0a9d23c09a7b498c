"""BotAdmin (tgm.domain.administration.ports) over the registry's admin RPCs: what the manager bot calls.

gRPC status codes become domain errors; server details are never carried over except the fixed,
token-free reason of an INVALID_ARGUMENT settings refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import grpc

from tgm.domain.administration.ports import (
    BlockedByUser,
    BlockUser,
    BotStats,
    Interaction,
    InteractionBatchResult,
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
from tgm.domain.administration.setting_rules import SETTING_REASON_CODES, InvalidSetting
from tgm.domain.bot_roles import CoAdmin, Invite, IssuedInvite
from tgm.domain.bots import Bot
from tgm.domain.errors import (
    ActionNotPermitted,
    BotNotFound,
    BotOwnedByAnotherAdmin,
    DomainError,
    IllegalTransition,
    InvalidToken,
    TokenRejected,
)
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.registry_client.client import RegistryUnavailable, bot_from_proto

_R = TypeVar("_R")
_SUBSCRIBER_STATUS = {
    registry_pb2.SUBSCRIBER_STATUS_ACTIVE: SubscriberStatus.ACTIVE,
    registry_pb2.SUBSCRIBER_STATUS_BLOCKED_BOT: SubscriberStatus.BLOCKED_BOT,
    registry_pb2.SUBSCRIBER_STATUS_BLOCKED_BY_ADMIN: SubscriberStatus.BLOCKED_BY_ADMIN,
}
REASON_METADATA_KEY = "tgm-reason"  # src/tgm/services/botregistry/grpc/servicer.py
NOT_PERMITTED_DETAILS = "only the bot's owner may do that"  # src/tgm/services/botregistry/grpc/servicer.py
DEFAULT_TIMEOUT_SECONDS = 20.0  # registrations call Telegram and the vault
RECORD_TIMEOUT_SECONDS = 1.0
BATCH_TIMEOUT_SECONDS = 10.0  # a flusher's background call: no user waits on it


def _error_for(exc: grpc.RpcError) -> DomainError:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = exc.details() if callable(getattr(exc, "details", None)) else ""
    if code is grpc.StatusCode.NOT_FOUND:
        return BotNotFound("no such bot")
    if code is grpc.StatusCode.PERMISSION_DENIED and details == NOT_PERMITTED_DETAILS:
        return ActionNotPermitted(NOT_PERMITTED_DETAILS)  # (a caller the registry refuses is another detail)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return IllegalTransition("illegal state change")
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return TokenRejected("Telegram rejected the token")
    if code is grpc.StatusCode.ALREADY_EXISTS:
        return BotOwnedByAnotherAdmin("registered by another admin")
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        if details == "not a bot token":
            return InvalidToken("not a bot token")
        return InvalidSetting(str(details or "invalid value")[:200], _reason_code(exc))
    name = code.name if code is not None else "UNKNOWN"
    return RegistryUnavailable(f"registry call failed: {name}")


def _reason_code(exc: grpc.RpcError) -> str:
    """The InvalidSetting reason code the registry put in the trailing metadata (a known code, else "invalid")."""
    trailing = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else None
    for item in trailing or ():
        key, value = getattr(item, "key", None), getattr(item, "value", None)
        if key is None and isinstance(item, tuple) and len(item) == 2:
            key, value = item
        if key == REASON_METADATA_KEY and isinstance(value, str) and value in SETTING_REASON_CODES:
            return value
    return "invalid"


class GrpcBotAdmin:
    def __init__(self, channel: grpc.Channel, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._timeout = timeout_seconds

    @staticmethod
    def _call(rpc: Callable[[], _R]) -> _R:
        failure: DomainError | None = None
        try:
            return rpc()
        except grpc.RpcError as exc:
            failure = _error_for(exc)
        raise failure  # outside the except block: no chained RpcError

    def register_sealed(self, owner_id: int, sealed_token: bytes, sealed_by_bot_id: str, chat_id: int) -> Registration:
        request = registry_pb2.RegisterBotRequest(
            owner_id=owner_id,
            sealed_token=registry_pb2.SealedToken(
                ciphertext=sealed_token, sealed_by_bot_id=sealed_by_bot_id, chat_id=chat_id
            ),
        )
        reply = self._call(lambda: self._stub.RegisterBot(request, timeout=self._timeout))
        return Registration(bot_from_proto(reply.bot), reply.refreshed)

    def register_managed(self, owner_id: int, managed_bot_user_id: int) -> Registration:
        request = registry_pb2.RegisterManagedBotRequest(owner_id=owner_id, managed_bot_user_id=managed_bot_user_id)
        reply = self._call(lambda: self._stub.RegisterManagedBot(request, timeout=self._timeout))
        return Registration(bot_from_proto(reply.bot), reply.refreshed)

    def list_bots(self, owner_id: int) -> list[Bot]:
        request = registry_pb2.ListBotsRequest(owner_id=owner_id)
        reply = self._call(lambda: self._stub.ListBots(request, timeout=self._timeout))
        return [bot_from_proto(bot) for bot in reply.bots]

    def details(self, actor_id: int, bot_id: str) -> tuple[Bot, BotStats]:
        request = registry_pb2.GetBotDetailsRequest(actor_id=actor_id, bot_id=bot_id)
        reply = self._call(lambda: self._stub.GetBotDetails(request, timeout=self._timeout))
        stats = BotStats(
            users_total=reply.stats.users_total,
            users_today=reply.stats.users_today,
            messages_today=reply.stats.messages_today,
        )
        return bot_from_proto(reply.bot), stats

    def subscriber_stats(self, actor_id: int, bot_id: str) -> tuple[Bot, SubscriberStats]:
        request = registry_pb2.GetSubscriberStatsRequest(actor_id=actor_id, bot_id=bot_id)
        reply = self._call(lambda: self._stub.GetSubscriberStats(request, timeout=self._timeout))
        stats = SubscriberStats(
            total=reply.stats.total,
            active=reply.stats.active,
            blocked_bot=reply.stats.blocked_bot,
            blocked_by_admin=reply.stats.blocked_by_admin,
            new_today=reply.stats.new_today,
            new_7_days=reply.stats.new_7_days,
        )
        return bot_from_proto(reply.bot), stats

    def set_enabled(self, actor_id: int, bot_id: str, enabled: bool) -> Bot:
        request = registry_pb2.SetBotStatusRequest(actor_id=actor_id, bot_id=bot_id, enabled=enabled)
        return bot_from_proto(self._call(lambda: self._stub.SetBotStatus(request, timeout=self._timeout)).bot)

    def rotate_secret(self, actor_id: int, bot_id: str) -> Bot:
        request = registry_pb2.RotateWebhookSecretRequest(actor_id=actor_id, bot_id=bot_id)
        return bot_from_proto(self._call(lambda: self._stub.RotateWebhookSecret(request, timeout=self._timeout)).bot)

    def delete(self, actor_id: int, bot_id: str) -> Bot:
        request = registry_pb2.DeleteBotRequest(actor_id=actor_id, bot_id=bot_id)
        return bot_from_proto(self._call(lambda: self._stub.DeleteBot(request, timeout=self._timeout)).bot)

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        request = settings_request(actor_id, bot_id, change)
        return bot_from_proto(self._call(lambda: self._stub.UpdateBotSettings(request, timeout=self._timeout)).bot)

    def record_interaction(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        request = registry_pb2.RecordInteractionRequest(
            bot_id=bot_id, telegram_user_id=telegram_user_id, language_code=language_code or ""
        )
        self._call(lambda: self._stub.RecordInteraction(request, timeout=RECORD_TIMEOUT_SECONDS))

    def record_interactions(self, interactions: Sequence[Interaction]) -> InteractionBatchResult:
        """RecordInteractions (at most 1000 entries; the flusher sends smaller batches)."""
        request = registry_pb2.RecordInteractionsRequest(
            interactions=[
                registry_pb2.Interaction(
                    bot_id=item.bot_id,
                    telegram_user_id=item.telegram_user_id,
                    language_code=item.language_code or "",
                    seen_at_unix_ms=int(item.seen_at.timestamp() * 1000),
                    messages=item.messages,
                )
                for item in interactions
            ]
        )
        reply = self._call(lambda: self._stub.RecordInteractions(request, timeout=BATCH_TIMEOUT_SECONDS))
        return InteractionBatchResult(
            stored=reply.stored, skipped_unknown_bot=reply.skipped_unknown_bot, skipped_invalid=reply.skipped_invalid
        )

    def list_subscribers(self, actor_id: int, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        request = registry_pb2.ListSubscribersRequest(
            actor_id=actor_id, bot_id=bot_id, after_user_id=after_user_id, limit=limit
        )
        reply = self._call(lambda: self._stub.ListSubscribers(request, timeout=self._timeout))
        return [
            Subscriber(
                telegram_user_id=item.telegram_user_id,
                first_seen=datetime.fromtimestamp(item.first_seen_unix_ms / 1000, UTC),
                last_seen=datetime.fromtimestamp(item.last_seen_unix_ms / 1000, UTC),
                status=_SUBSCRIBER_STATUS[item.status],
            )
            for item in reply.subscribers
            if item.status in _SUBSCRIBER_STATUS
        ]

    # -- co-admins (issue 15) ---------------------------------------------------------------------------

    def create_invite(self, actor_id: int, bot_id: str) -> IssuedInvite:
        request = registry_pb2.CreateInviteRequest(actor_id=actor_id, bot_id=bot_id)
        reply = self._call(lambda: self._stub.CreateInvite(request, timeout=self._timeout))
        return IssuedInvite(
            bot=bot_from_proto(reply.bot),
            invite_id=reply.invite_id,
            code=reply.code,
            link=reply.link,
            expires_at=_from_ms(reply.expires_at_unix_ms),
        )

    def redeem_invite(self, actor_id: int, code: str) -> Bot:
        request = registry_pb2.RedeemInviteRequest(actor_id=actor_id, code=code)
        return bot_from_proto(self._call(lambda: self._stub.RedeemInvite(request, timeout=self._timeout)).bot)

    def admins(self, actor_id: int, bot_id: str) -> tuple[Bot, list[CoAdmin], list[Invite]]:
        request = registry_pb2.ListBotAdminsRequest(actor_id=actor_id, bot_id=bot_id)
        reply = self._call(lambda: self._stub.ListBotAdmins(request, timeout=self._timeout))
        bot = bot_from_proto(reply.bot)
        invites = [
            Invite(
                id=item.invite_id,
                bot_id=bot.id,
                code_sha256=b"",  # stays in the registry
                created_by=item.created_by,
                created_at=_from_ms(item.created_at_unix_ms),
                expires_at=_from_ms(item.expires_at_unix_ms),
            )
            for item in reply.invites
        ]
        return bot, [_co_admin(bot.id, item) for item in reply.admins], invites

    def revoke_admin(self, actor_id: int, membership_id: str) -> tuple[Bot, CoAdmin]:
        request = registry_pb2.RevokeBotAdminRequest(actor_id=actor_id, membership_id=membership_id)
        reply = self._call(lambda: self._stub.RevokeBotAdmin(request, timeout=self._timeout))
        bot = bot_from_proto(reply.bot)
        return bot, _co_admin(bot.id, reply.admin)

    def revoke_invite(self, actor_id: int, invite_id: str) -> Bot:
        request = registry_pb2.RevokeInviteRequest(actor_id=actor_id, invite_id=invite_id)
        return bot_from_proto(self._call(lambda: self._stub.RevokeInvite(request, timeout=self._timeout)).bot)

    def leave(self, actor_id: int, bot_id: str) -> Bot:
        request = registry_pb2.LeaveBotRequest(actor_id=actor_id, bot_id=bot_id)
        return bot_from_proto(self._call(lambda: self._stub.LeaveBot(request, timeout=self._timeout)).bot)

    def team(self, bot_id: str) -> tuple[int, ...]:
        """GetBotTeam: the bot's owner, then its admins (for a service acting on the bot's behalf)."""
        reply = self._call(
            lambda: self._stub.GetBotTeam(registry_pb2.GetBotTeamRequest(bot_id=bot_id), timeout=self._timeout)
        )
        return (reply.owner_id, *reply.admin_ids)

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int:
        """MarkSubscribersBlocked (at most 1000 entries): users whose sends failed with "bot was blocked"."""
        request = registry_pb2.MarkSubscribersBlockedRequest(
            subscribers=[
                registry_pb2.BlockedSubscriber(
                    bot_id=entry.bot_id,
                    telegram_user_id=entry.telegram_user_id,
                    blocked_at_unix_ms=int(entry.at.timestamp() * 1000),
                )
                for entry in entries
            ]
        )
        return self._call(lambda: self._stub.MarkSubscribersBlocked(request, timeout=BATCH_TIMEOUT_SECONDS)).marked


def _from_ms(unix_ms: int) -> datetime:
    return datetime.fromtimestamp(unix_ms / 1000, UTC)


def _co_admin(bot_id: str, item: registry_pb2.BotAdmin) -> CoAdmin:
    return CoAdmin(item.membership_id, bot_id, item.telegram_user_id, item.added_by, _from_ms(item.added_at_unix_ms))


def settings_request(actor_id: int, bot_id: str, change: SettingsChange) -> registry_pb2.UpdateBotSettingsRequest:
    """The UpdateBotSettings request for one change (the manager's client and the operator's CLI)."""
    request = registry_pb2.UpdateBotSettingsRequest(actor_id=actor_id, bot_id=bot_id)
    if isinstance(change, SetWelcome):
        request.welcome_text = change.text
    elif isinstance(change, SetMaintenance):
        request.maintenance_text = change.text
    elif isinstance(change, BlockUser):
        request.block_user.CopyFrom(
            registry_pb2.BlockUser(telegram_user_id=change.telegram_user_id, seconds=change.seconds)
        )
    elif isinstance(change, UnblockUser):
        request.unblock_user = change.telegram_user_id
    elif isinstance(change, SetRateLimit):
        request.set_rate_limit.CopyFrom(
            registry_pb2.SetRateLimit(action=change.action, limit=change.limit, window_seconds=change.window_seconds)
        )
    elif isinstance(change, SetCooldown):
        request.set_cooldown.CopyFrom(registry_pb2.SetCooldown(action=change.action, seconds=change.seconds))
    elif isinstance(change, ResetLimits):
        request.reset_limits = True
    elif isinstance(change, SetCaptchaMode):
        request.captcha_mode = change.mode
    elif isinstance(change, SetInboxMode):
        request.inbox_enabled = change.enabled
    elif isinstance(change, SetCommand):
        request.set_command.CopyFrom(registry_pb2.CustomCommand(command=change.command, reply=change.reply))
    elif isinstance(change, SetApiCommand):
        request.set_api_command.CopyFrom(
            registry_pb2.ApiCommand(
                command=change.command,
                url=change.api.url,
                method=change.api.method,
                timeout_seconds=change.api.timeout_seconds,
            )
        )
    elif isinstance(change, RemoveCommand):
        request.remove_command = change.command
    return request
