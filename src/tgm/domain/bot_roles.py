"""Who may do what on a bot (issue 15, co-admins): the one place that decides.

A bot has exactly one **owner** (`Bot.owner_id`: who registered it) and any number of **admins** the owner invited.
Admins run the bot day to day (details, stats, settings, users, subscribers, enable/disable, broadcasts, the
feedback inbox); what changes who controls the bot or its credentials stays the owner's:

- delete the bot (irreversible);
- rotate the webhook secret: a credential operation (the registry opens the token and calls setWebhook) and the
  owner's recovery step after revoking an admin they no longer trust, which an admin must not be able to undo or
  race;
- invite admins, list pending invites, revoke admins or invites.

An admin may always leave. Everyone else has no role: the registry answers "no such bot", as for a bot that does
not exist. Invites are one-time codes: only their SHA-256 is stored, they expire and bind one bot.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from tgm.domain.bots import Bot


class BotRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"


class BotAction(StrEnum):
    """What an actor does on a bot; `may` says who may."""

    VIEW = "view"  # details, stats, subscribers and their export
    CONFIGURE = "configure"  # settings: welcome, commands, maintenance, blocks, limits, CAPTCHA
    SET_STATUS = "set_status"  # enable / disable
    BROADCAST = "broadcast"
    INBOX = "inbox"  # read and answer the bot's feedback inbox
    ROTATE_SECRET = "rotate_secret"  # noqa: S105 - an action name
    DELETE = "delete"
    MANAGE_ADMINS = "manage_admins"  # invite, list invites and admins, revoke


OWNER_ONLY = frozenset({BotAction.ROTATE_SECRET, BotAction.DELETE, BotAction.MANAGE_ADMINS})


def may(role: BotRole | None, action: BotAction) -> bool:
    """Whether `role` (None: no role on the bot) may do `action`."""
    if role is BotRole.OWNER:
        return True
    return role is BotRole.ADMIN and action not in OWNER_ONLY


def role_in(bot: Bot, user_id: int, admin_ids: Sequence[int] | frozenset[int]) -> BotRole | None:
    """The user's role on `bot` given its admins' ids (the manager bot and non-positive ids have none)."""
    if user_id <= 0 or bot.is_manager:
        return None
    if bot.owner_id == user_id:
        return BotRole.OWNER
    return BotRole.ADMIN if user_id in admin_ids else None


# -- invites -------------------------------------------------------------------------------------------------

INVITE_CODE_BYTES = 24  # 192 bits → 32 characters of base64url: fits Telegram's 64-character /start parameter
DEFAULT_INVITE_TTL = timedelta(hours=24)
MAX_PENDING_INVITES = 10  # per bot
MAX_ADMINS = 20  # per bot, the owner not counted
# What a code can look like (token_urlsafe's alphabet); anything else is refused before a lookup.
INVITE_CODE_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,64}")


def new_invite_code() -> str:
    return secrets.token_urlsafe(INVITE_CODE_BYTES)


def invite_code_hash(code: str) -> bytes:
    """What the registry stores and looks up: the code itself is never kept. A lookup by this hash is an index
    equality on 32 random-looking bytes, so its timing says nothing about a code that was not given."""
    return hashlib.sha256(b"tgm invite:" + code.encode("ascii")).digest()


def join_link(manager_username: str, code: str) -> str:
    """The deep link that opens the manager bot with `/start <code>`."""
    return f"https://t.me/{manager_username}?start={code}"


@dataclass(frozen=True)
class CoAdmin:
    """One admin of one bot: who, added by whom and when. `id` names the membership (a revoke button carries it)."""

    id: str
    bot_id: str
    telegram_user_id: int
    added_by: int
    added_at: datetime


@dataclass(frozen=True)
class Invite:
    """A pending or spent invite; the code is not here, only its hash."""

    id: str
    bot_id: str
    code_sha256: bytes
    created_by: int
    created_at: datetime
    expires_at: datetime
    used_by: int | None = None
    used_at: datetime | None = None
    revoked_at: datetime | None = None

    def pending(self, now: datetime) -> bool:
        return self.used_at is None and self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True)
class IssuedInvite:
    """What the owner gets once: the code (never stored) and the link that carries it."""

    bot: Bot
    invite_id: str
    code: str = field(repr=False)
    link: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class BotTeam:
    """A bot's owner and admins: who may act on it (and who a feedback message or a broadcast report reaches)."""

    bot: Bot
    admins: tuple[CoAdmin, ...]

    @property
    def member_ids(self) -> tuple[int, ...]:
        """The owner first, then the admins by the time they joined."""
        return (self.bot.owner_id, *(admin.telegram_user_id for admin in self.admins))


class BotAdminStore(Protocol):
    """The registry's co-admin and invite tables. Every write is one transaction."""

    def admin_ids(self, bot_id: str) -> frozenset[int]: ...

    def admins(self, bot_id: str) -> list[CoAdmin]:
        """By the time they were added."""
        ...

    def membership(self, membership_id: str) -> CoAdmin | None: ...

    def bots_administered_by(self, telegram_user_id: int) -> list[str]: ...

    def remove_admin(self, bot_id: str, telegram_user_id: int) -> bool:
        """False when they were not an admin (already revoked or left)."""
        ...

    def add_invite(self, invite: Invite) -> None: ...

    def invite_by_hash(self, code_sha256: bytes) -> Invite | None: ...

    def invite(self, invite_id: str) -> Invite | None: ...

    def pending_invites(self, bot_id: str, now: datetime) -> list[Invite]: ...

    def revoke_invite(self, invite_id: str, now: datetime) -> bool:
        """False when it was no longer pending (used or revoked)."""
        ...

    def clear(self, bot_id: str) -> None:
        """Drops every admin and invite of the bot (it changed hands: the new owner did not invite them)."""
        ...

    def redeem(self, invite_id: str, admin: CoAdmin) -> bool:
        """Marks the invite used by `admin.telegram_user_id` and adds the admin, atomically; False (nothing
        changed) when someone redeemed or revoked it first."""
        ...
