"""The Bot aggregate and its value objects."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tgm.domain.errors import IllegalTransition, InvalidToken

_TOKEN_FORMAT = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_MAX_TOKEN_LENGTH = 80


class BotToken:
    """A Telegram bot token. Never printable: str/repr show only the bot id part."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        candidate = value.strip()
        if len(candidate) > _MAX_TOKEN_LENGTH or not _TOKEN_FORMAT.fullmatch(candidate):
            raise InvalidToken("not a bot token: expected <digits>:<letters, digits, _ or ->")
        self._value = candidate

    @property
    def telegram_bot_id(self) -> int:
        return int(self._value.split(":", 1)[0])

    def reveal(self) -> str:
        """The secret itself; call only where it is handed to Telegram or the vault."""
        return self._value

    def __repr__(self) -> str:
        return f"BotToken({self.telegram_bot_id}:***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BotToken) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self.telegram_bot_id)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("BotToken cannot be pickled")


class BotStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DISABLED = "disabled"
    DELETED = "deleted"
    FAILED = "failed"


_ALLOWED_MOVES: dict[BotStatus, frozenset[BotStatus]] = {
    BotStatus.PENDING: frozenset({BotStatus.ACTIVE, BotStatus.FAILED}),
    BotStatus.ACTIVE: frozenset({BotStatus.DISABLED, BotStatus.DELETED}),
    BotStatus.DISABLED: frozenset({BotStatus.ACTIVE, BotStatus.DELETED}),
    BotStatus.DELETED: frozenset(),
    BotStatus.FAILED: frozenset(),
}


@dataclass(frozen=True)
class WebhookSecret:
    """A fresh random secret for X-Telegram-Bot-Api-Secret-Token; only its hash is kept."""

    value: str = field(repr=False)

    @classmethod
    def generate(cls) -> WebhookSecret:
        # Telegram allows 1-256 chars of A-Z a-z 0-9 _ -; 32 bytes of entropy is plenty.
        return cls(secrets.token_urlsafe(32))

    @property
    def sha256(self) -> bytes:
        return hash_webhook_secret(self.value)


def hash_webhook_secret(secret: str) -> bytes:
    # A plain hash suffices: the secret is 256 random bits, nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).digest()


def webhook_secret_matches(presented: str | None, expected_sha256: bytes) -> bool:
    """Constant-time check of a presented header against the stored hash."""
    if presented is None:
        return False
    return hmac.compare_digest(hash_webhook_secret(presented), expected_sha256)


def new_public_id() -> str:
    """The webhook path segment: 128+ random bits, URL-safe, unrelated to the token."""
    return secrets.token_urlsafe(18)


def new_bot_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class ApiCommand:
    """A command that calls an external HTTP API and replies with the result."""

    url: str
    method: str = "GET"
    timeout_seconds: float = 5.0


class CaptchaMode(StrEnum):
    """When a bot's new users must pass a CAPTCHA (src/tgm/domain/captcha.py)."""

    AUTO = "auto"  # while the bot is under attack (the default)
    ON = "on"  # always
    OFF = "off"


@dataclass(frozen=True)
class RateRule:
    """At most `limit` updates of one action per user within `window_seconds` (src/tgm/domain/inbound.py)."""

    limit: int
    window_seconds: float


@dataclass
class BotSettings:
    welcome_text: str = ""
    language: str = "pt-BR"
    # "/command" → reply text
    custom_commands: dict[str, str] = field(default_factory=dict)
    # "/command" → external API to call
    api_commands: dict[str, ApiCommand] = field(default_factory=dict)
    # Maintenance mode when not empty: users get this text (at most once per window) instead of normal answers.
    maintenance_text: str = ""
    # Temporarily blocked users: Telegram user id → blocked until (Unix seconds); their updates are dropped.
    blocked_users: dict[int, int] = field(default_factory=dict)
    # The bot's own rate limits and cooldowns per action ("cmd:/start", "msg", "default"…), over the service's
    # RATE_LIMITS_JSON / COOLDOWNS_JSON; changed live by the admin or the operator.
    rate_limits: dict[str, RateRule] = field(default_factory=dict)
    cooldowns: dict[str, float] = field(default_factory=dict)
    captcha_mode: CaptchaMode = CaptchaMode.AUTO
    # Feedback inbox (src/tgm/domain/inbox.py): users' messages go to the admins, their replies back to the users.
    inbox_enabled: bool = False

    def blocks(self, telegram_user_id: int, now_unix: float) -> bool:
        return self.blocked_users.get(telegram_user_id, 0) > now_unix


@dataclass
class Bot:
    """A bot managed by tgm. Status changes only through the transition methods."""

    id: str
    public_id: str
    owner_id: int
    telegram_bot_id: int
    username: str
    status: BotStatus
    sealed_token: bytes = field(repr=False)
    webhook_secret_sha256: bytes = field(repr=False)
    settings: BotSettings
    created_at: datetime
    updated_at: datetime
    is_manager: bool = False
    # Optimistic concurrency: the row version this copy was read at; a save with a stale version is refused.
    version: int = 0

    def _move(self, target: BotStatus, now: datetime, *, from_: BotStatus | None = None) -> None:
        if target not in _ALLOWED_MOVES[self.status] or (from_ is not None and self.status is not from_):
            raise IllegalTransition(f"bot {self.id}: {self.status.value} → {target.value} is not allowed")
        self.status = target
        self.updated_at = now

    def activate(self, now: datetime) -> None:
        """First activation, once the webhook is set."""
        self._move(BotStatus.ACTIVE, now, from_=BotStatus.PENDING)

    def fail(self, now: datetime) -> None:
        self._move(BotStatus.FAILED, now)

    def disable(self, now: datetime) -> None:
        self._move(BotStatus.DISABLED, now)

    def enable(self, now: datetime) -> None:
        """Back to service after the owner disabled it."""
        self._move(BotStatus.ACTIVE, now, from_=BotStatus.DISABLED)

    def delete(self, now: datetime) -> None:
        self._move(BotStatus.DELETED, now)

    @property
    def serves_updates(self) -> bool:
        return self.status is BotStatus.ACTIVE


@dataclass(frozen=True)
class TelegramBotInfo:
    """What getMe tells about a bot."""

    telegram_bot_id: int
    username: str
    first_name: str
    can_manage_bots: bool = False
