"""Ports: what the domain needs from the outside world, named by role.

Each port has an in-memory adapter (unit tests, embedded mode) and a real one; adapters are
chosen only in a service's container.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from libs.domain.bots import Bot, BotToken, TelegramBotInfo
from libs.domain.updates import UpdateEnvelope


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""
        ...


class SecretKind(StrEnum):
    BOT_TOKEN = "bot_token"  # noqa: S105 - a label, not a secret
    INBOUND_TEXT = "inbound_text"


class DecryptPurpose(StrEnum):
    MANAGE = "manage"
    SEND = "send"


class TokenVault(Protocol):
    """Seals and opens secrets; only the vault service holds the keys."""

    def encrypt(self, bot_ref: str, kind: SecretKind, plaintext: str) -> bytes: ...

    def decrypt(self, bot_ref: str, kind: SecretKind, purpose: DecryptPurpose, ciphertext: bytes) -> str: ...


@dataclass(frozen=True)
class WebhookRegistration:
    url: str
    secret_token: str
    allowed_updates: Sequence[str]
    drop_pending_updates: bool = True


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    chat_id: int


class TelegramApi(Protocol):
    """The Bot API methods tgm uses. Raises TokenRejected, TelegramRequestFailed, TelegramUnavailable."""

    def get_me(self, token: BotToken) -> TelegramBotInfo: ...

    def set_webhook(self, token: BotToken, registration: WebhookRegistration) -> None: ...

    def delete_webhook(self, token: BotToken, drop_pending_updates: bool = False) -> None: ...

    def send_message(
        self,
        token: BotToken,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        disable_web_page_preview: bool = False,
    ) -> SentMessage: ...

    def edit_message_text(
        self,
        token: BotToken,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> SentMessage: ...

    def delete_message(self, token: BotToken, chat_id: int, message_id: int) -> None: ...

    def get_managed_bot_token(self, manager_token: BotToken, user_id: int) -> BotToken:
        """Bot API 9.6: the token of a bot the user created through the manager bot."""
        ...

    def answer_callback_query(self, token: BotToken, callback_query_id: str, text: str | None = None) -> None: ...


class Outbox(Protocol):
    """Everything a managed bot says goes through here, addressed by bot id, never by token.

    Adapters decide when a call reaches Telegram (flood control, 429 retry_after) and open the
    bot's token only at that moment.
    """

    def send_message(
        self,
        bot_id: str,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        disable_web_page_preview: bool = False,
    ) -> None: ...

    def edit_message_text(
        self,
        bot_id: str,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> None: ...

    def delete_message(self, bot_id: str, chat_id: int, message_id: int) -> None: ...

    def answer_callback_query(self, bot_id: str, callback_query_id: str, text: str | None = None) -> None: ...


class BotRepository(Protocol):
    def add(self, bot: Bot) -> None: ...

    def save(self, bot: Bot) -> None: ...

    def get(self, bot_id: str) -> Bot | None: ...

    def by_public_id(self, public_id: str) -> Bot | None: ...

    def by_telegram_bot_id(self, telegram_bot_id: int) -> Bot | None: ...

    def list_by_owner(self, owner_id: int) -> list[Bot]: ...


@dataclass(frozen=True)
class Route:
    """What the gateway needs to accept one webhook call."""

    bot_id: str
    webhook_secret_sha256: bytes
    accepts_updates: bool
    is_manager: bool = False


class RouteDirectory(Protocol):
    def route_for(self, public_id: str) -> Route | None: ...


class UpdateQueue(Protocol):
    """Durable hand-off from the gateway to the workers."""

    def enqueue(self, envelope: UpdateEnvelope) -> None: ...


class UpdateDeduplicator(Protocol):
    def already_done(self, bot_id: str, update_id: int) -> bool: ...

    def mark_done(self, bot_id: str, update_id: int) -> None: ...


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int) -> float:
        """Counts one hit; returns 0 when allowed, else seconds until the next allowed one."""
        ...


class Cooldowns(Protocol):
    def start(self, key: str, seconds: float) -> bool:
        """True when no cooldown was running (and one starts now)."""
        ...


class Locks(Protocol):
    def acquire(self, key: str, ttl_seconds: float) -> str | None:
        """An owner token when acquired, None when someone else holds it."""
        ...

    def release(self, key: str, owner_token: str) -> bool:
        """Releases only if `owner_token` still holds the lock."""
        ...


class CallbackSigner(Protocol):
    def sign(self, payload: dict[str, Any], user_id: int, ttl_seconds: int) -> str: ...

    def verify(self, token: str, user_id: int) -> dict[str, Any] | None: ...


class ExternalApi(Protocol):
    def call(self, url: str, method: str, timeout_seconds: float, payload: dict[str, Any] | None) -> str: ...


class BotDirectory(Protocol):
    """Read side of the registry, as the dispatcher sees it."""

    def get_bot(self, bot_id: str) -> Bot | None: ...
