"""The registry's admin side as the rest of the system sees it: the BotAdmin port, the settings changes it accepts,
subscriber and interaction values. Implemented by BotAdministration (in the registry) and by the gRPC client.
Last, the ports the registry's use cases need themselves (InteractionStats, ManagerLookup)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tgm.domain.bot_roles import CoAdmin, Invite, IssuedInvite
from tgm.domain.bots import ApiCommand, Bot


@dataclass(frozen=True)
class BotStats:
    users_total: int = 0
    users_today: int = 0
    messages_today: int = 0


@dataclass(frozen=True)
class SubscriberStats:
    """A bot's subscribers (every user who started it) by status, and the new ones (UTC days).

    Each subscriber has one status: blocked by the admin (a /block in force) comes first, then "blocked the
    bot" (Telegram answered 403 "bot was blocked by the user"), else active."""

    total: int = 0
    active: int = 0
    blocked_bot: int = 0
    blocked_by_admin: int = 0
    new_today: int = 0
    new_7_days: int = 0


class SubscriberStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED_BOT = "blocked_bot"  # Telegram's 403 "bot was blocked by the user"
    BLOCKED_BY_ADMIN = "blocked_by_admin"  # a /block in force


@dataclass(frozen=True)
class Subscriber:
    telegram_user_id: int
    first_seen: datetime
    last_seen: datetime
    status: SubscriberStatus


@dataclass(frozen=True)
class BlockedByUser:
    """A send to `telegram_user_id` failed at `at` because the user blocked the bot."""

    bot_id: str
    telegram_user_id: int
    at: datetime  # timezone-aware


@dataclass(frozen=True)
class Registration:
    bot: Bot
    refreshed: bool


@dataclass(frozen=True)
class SetWelcome:
    text: str


@dataclass(frozen=True)
class SetCommand:
    command: str
    reply: str


@dataclass(frozen=True)
class SetApiCommand:
    command: str
    api: ApiCommand


@dataclass(frozen=True)
class RemoveCommand:
    command: str


@dataclass(frozen=True)
class SetMaintenance:
    """Maintenance mode on with `text` as the users' answer; an empty text turns it off."""

    text: str


@dataclass(frozen=True)
class BlockUser:
    """The user's updates to the bot are dropped for `seconds` (a new block replaces the old one)."""

    telegram_user_id: int
    seconds: int


@dataclass(frozen=True)
class UnblockUser:
    telegram_user_id: int


@dataclass(frozen=True)
class SetRateLimit:
    """The bot's own rate limit for one action (`limit` 0 removes it: the service's default applies again)."""

    action: str
    limit: int
    window_seconds: float


@dataclass(frozen=True)
class SetCooldown:
    """The bot's own cooldown for one action (0 removes it)."""

    action: str
    seconds: float


@dataclass(frozen=True)
class ResetLimits:
    """Drops every rate limit and cooldown of the bot's own: the service's defaults apply."""


@dataclass(frozen=True)
class SetCaptchaMode:
    """'auto' (while the bot is under attack), 'on' or 'off' (src/tgm/domain/captcha.py)."""

    mode: str


@dataclass(frozen=True)
class SetInboxMode:
    """The feedback inbox on or off (src/tgm/domain/inbox.py)."""

    enabled: bool


SettingsChange = (
    SetWelcome
    | SetCommand
    | SetApiCommand
    | RemoveCommand
    | SetMaintenance
    | BlockUser
    | UnblockUser
    | SetRateLimit
    | SetCooldown
    | ResetLimits
    | SetCaptchaMode
    | SetInboxMode
)


class BotAdmin(Protocol):
    """The registry's admin RPCs. Every call names the acting admin; a bot on which they have no role raises
    BotNotFound exactly like a nonexistent one, an action their role may not do ActionNotPermitted. Other
    errors: InvalidToken, TokenRejected, BotOwnedByAnotherAdmin, IllegalTransition, TelegramUnavailable,
    RegistryUnavailable. `list_bots` gives the bots the user owns, then those they administer."""

    def register_sealed(
        self, owner_id: int, sealed_token: bytes, sealed_by_bot_id: str, chat_id: int
    ) -> Registration: ...

    def register_managed(self, owner_id: int, managed_bot_user_id: int) -> Registration:
        """Also for a managed bot whose token or owner changed: the owner Telegram names takes it over."""
        ...

    def list_bots(self, owner_id: int) -> list[Bot]: ...

    def details(self, actor_id: int, bot_id: str) -> tuple[Bot, BotStats]: ...

    def subscriber_stats(self, actor_id: int, bot_id: str) -> tuple[Bot, SubscriberStats]: ...

    def list_subscribers(self, actor_id: int, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        """One page, by Telegram user id ascending, of users after `after_user_id` (0: from the start)."""
        ...

    def set_enabled(self, actor_id: int, bot_id: str, enabled: bool) -> Bot: ...

    def rotate_secret(self, actor_id: int, bot_id: str) -> Bot: ...

    def delete(self, actor_id: int, bot_id: str) -> Bot: ...

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot: ...

    def record_interaction(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None: ...

    # -- co-admins (issue 15; who may do what: src/tgm/domain/bot_roles.py) --------------------------------------

    def create_invite(self, actor_id: int, bot_id: str) -> IssuedInvite:
        """Owner only (else ActionNotPermitted); InvalidSetting too_many_invites / too_many_admins."""
        ...

    def redeem_invite(self, actor_id: int, code: str) -> Bot:
        """The bot the actor now administers; refusals are InvalidSetting with an invite_* reason code."""
        ...

    def admins(self, actor_id: int, bot_id: str) -> tuple[Bot, list[CoAdmin], list[Invite]]:
        """Owner only: the admins and the pending invites (an Invite's code hash stays in the registry)."""
        ...

    def revoke_admin(self, actor_id: int, membership_id: str) -> tuple[Bot, CoAdmin]: ...

    def revoke_invite(self, actor_id: int, invite_id: str) -> Bot: ...

    def leave(self, actor_id: int, bot_id: str) -> Bot: ...


# -- per-update stats off the hot path (issue 8): recorded cheaply, flushed to the registry in batches -----------


@dataclass(frozen=True)
class Interaction:
    """One user's updates to one managed bot since the last flush, coalesced into one entry."""

    bot_id: str
    telegram_user_id: int
    language_code: str | None
    seen_at: datetime  # timezone-aware; the last update's time
    messages: int = 1  # updates this entry stands for


@dataclass(frozen=True)
class InteractionBatchResult:
    stored: int = 0
    skipped_unknown_bot: int = 0
    skipped_invalid: int = 0


class InteractionRecorder(Protocol):
    """Counts one update of a user to a managed bot. Cheap: no registry call, at most one Redis round trip."""

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None: ...


class PendingInteractions(Protocol):
    """Interactions recorded but not yet sent to the registry (shared by every process that flushes them)."""

    def take(self, max_bots: int) -> list[Interaction]:
        """Atomically removes and returns the pending entries of up to `max_bots` bots: two takers never get the
        same entry."""
        ...

    def put_back(self, interactions: Sequence[Interaction]) -> None:
        """Returns entries a failed flush took, merged with whatever was recorded since."""
        ...


class InteractionSink(Protocol):
    """The registry's batch RPC (RecordInteractions)."""

    def record_interactions(self, interactions: Sequence[Interaction]) -> InteractionBatchResult: ...


# -- what the registry's use cases need (its adapters: src/tgm/services/botregistry/adapters) ------------------


class InteractionStats(Protocol):
    """Who used a bot and when, per subscriber; the counts an admin reads."""

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None, now: datetime) -> None: ...

    def stats(self, bot_id: str, now: datetime) -> BotStats: ...

    def subscriber_stats(self, bot_id: str, now: datetime, blocked_by_admin: Collection[int]) -> SubscriberStats: ...

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int: ...

    def list_subscribers(self, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        """Statuses active or blocked the bot (admin blocks are not the stats' to know)."""
        ...


class ManagerLookup(Protocol):
    """The manager bot's own record (registered at the registry's start), if there is one."""

    def manager_bot(self) -> Bot | None: ...
