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

from tgm.domain.bots import Bot, BotToken, TelegramBotInfo
from tgm.domain.outbound import CopyMessage, EditMessageText, OutboundCall, SendDocument, SendMessage
from tgm.domain.updates import UpdateEnvelope


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

    def send_message(self, token: BotToken, message: SendMessage) -> SentMessage: ...

    def edit_message_text(self, token: BotToken, edit: EditMessageText) -> SentMessage: ...

    def delete_message(self, token: BotToken, chat_id: int, message_id: int) -> None: ...

    def send_document(self, token: BotToken, document: SendDocument) -> SentMessage:
        """Uploads the document (multipart)."""
        ...

    def get_managed_bot_token(self, manager_token: BotToken, user_id: int) -> BotToken:
        """Bot API 9.6: the token of a bot the user created through the manager bot."""
        ...

    def answer_callback_query(self, token: BotToken, callback_query_id: str, text: str | None = None) -> None: ...

    def copy_message(self, token: BotToken, copy: CopyMessage) -> SentMessage: ...


class Outbox(Protocol):
    """Everything a managed bot says goes through here, addressed by bot id, never by token.

    Adapters decide when a call reaches Telegram (flood control, 429 retry_after) and open the
    bot's token only at that moment.
    """

    def send(self, bot_id: str, call: OutboundCall, *, effect_id: str, link_chat_id: int | None = None) -> None:
        """`effect_id`: the call's idempotency key (src/tgm/domain/effects.py): a call made again under an id already
        used (a re-run of the same work) is not made twice. `link_chat_id`: an inbox delivery (a send or a copy),
        linked to that user's chat once Telegram numbered it (InboxLinks.link, src/tgm/domain/inbox.py)."""
        ...


class BotRepository(Protocol):
    """Writes are optimistic: `save` succeeds only if the row is still at `bot.version` (ConcurrentUpdate
    otherwise) and bumps `bot.version`; `add` raises DuplicateBot when telegram_bot_id/public_id is taken."""

    def add(self, bot: Bot) -> None: ...

    def save(self, bot: Bot) -> None: ...

    def replace(self, old: Bot, new: Bot) -> None:
        """Atomically drops `old` (still at old.version, with its stats) and adds `new` in its place."""
        ...

    def get(self, bot_id: str) -> Bot | None: ...

    def versions(self, bot_ids: Sequence[str]) -> dict[str, int]:
        """The current version of each named bot that exists (unknown ids are left out)."""
        ...

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
    version: int = 0  # the bot's version when this route was read


class RouteDirectory(Protocol):
    """The gateway's view of the registry's routes (public id → bot)."""

    def cached(self, public_id: str) -> tuple[bool, Route | None]:
        """Non-blocking, no I/O: `(True, route or None)` when the answer is known, `(False, None)` otherwise."""
        ...

    def route_for(self, public_id: str) -> Route | None:
        """Blocking: the route, looked up when it is not known."""
        ...

    def refreshed_route(self, public_id: str) -> Route | None:
        """Blocking: the route looked up again when the known one may be stale (a secret that did not match).
        Implementations rate-limit this per bot, so bad secrets cannot turn into registry load."""
        ...


class UpdateQueue(Protocol):
    """Durable hand-off from the gateway to the workers."""

    def enqueue(self, envelope: UpdateEnvelope) -> bool:
        """Stored (True), or dropped because its chat's mailbox is full (False); raises when it cannot store."""
        ...


class AsyncUpdateQueue(Protocol):
    """The same hand-off for an event loop: the gateway awaits it instead of parking a thread on it."""

    async def enqueue(self, envelope: UpdateEnvelope) -> bool: ...

    async def close(self) -> None: ...


class UpdateDeduplicator(Protocol):
    def already_done(self, bot_id: str, update_id: int) -> bool: ...

    def mark_done(self, bot_id: str, update_id: int) -> None: ...


@dataclass(frozen=True)
class RateDecision:
    """One hit's verdict. `notify` is true for the first refusal in a window (tell the user once)."""

    allowed: bool
    retry_after_seconds: float = 0.0
    notify: bool = False


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        """Counts one hit atomically (GCRA: `limit` per `window_seconds`, bursts up to `limit`)."""
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

    def renew(self, key: str, owner_token: str, ttl_seconds: float) -> bool:
        """Extends the TTL only if `owner_token` still holds the lock; False when it was lost."""
        ...


class ExternalApi(Protocol):
    """Raises ExternalApiFailed (tgm.domain.use_cases.run_api_call); `CircuitOpen` when the API's breaker is open."""

    def call(
        self, url: str, method: str, timeout_seconds: float, payload: dict[str, Any] | None, scope: str = ""
    ) -> str:
        """`scope` (the bot id) keys the breaker with the API's host: one tenant cannot open it for others."""
        ...

    def is_open(self, url: str, scope: str = "") -> bool:
        """True while the circuit breaker of (`scope`, `url`'s API) refuses calls (shared by every worker)."""
        ...


@dataclass(frozen=True)
class ApiCallJob:
    """One external-API command call, queued apart from the chat's drain. Ids and text only, never a token."""

    job_id: str
    bot_id: str
    chat_id: int
    user_id: int
    command: str
    argument: str
    language: str | None
    lock_key: str
    lock_owner: str
    attempt: int = 0


class ApiCallScheduler(Protocol):
    def schedule(self, job: ApiCallJob, delay_seconds: float = 0.0) -> None: ...


@dataclass(frozen=True)
class MailboxItem:
    """The head of a chat's mailbox: the raw stored item (to pop exactly it) and its envelope (None if malformed)."""

    raw: bytes
    envelope: UpdateEnvelope | None


class ChatMailbox(Protocol):
    """Per-(bot, chat) FIFO of updates waiting to be handled, shared by every worker."""

    def push(self, chat_key: str, envelope: UpdateEnvelope) -> bool:
        """Appends; False (nothing stored) when the chat already holds the mailbox's cap of updates."""
        ...

    def peek(self, bot_id: str, chat_key: str) -> MailboxItem | None: ...

    def pop(self, bot_id: str, chat_key: str, item: MailboxItem) -> bool:
        """Removes the head only if it is still `item`."""
        ...

    def size(self, bot_id: str, chat_key: str) -> int: ...

    def mark_drain_pending(self, bot_id: str, chat_key: str) -> bool:
        """True when no drain was due for the chat (the caller schedules one now); False when one is."""
        ...

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        """A drain starts: an update pushed from now on must schedule another one."""
        ...

    def record_failure(self, bot_id: str, chat_key: str, update_id: int, retry_at: float) -> int:
        """Counts one failed attempt at an update; returns the attempts so far."""
        ...

    def failures(self, bot_id: str, chat_key: str, update_id: int) -> tuple[int, float]:
        """(attempts, retry_at epoch seconds) for an update; (0, 0.0) when none."""
        ...

    def clear_failures(self, bot_id: str, chat_key: str, update_id: int) -> None: ...


@dataclass(frozen=True)
class LaneItem:
    """One update at the head of a chat's mailbox, with what the drain needs to decide on it."""

    item: MailboxItem
    done: bool  # (bot, update_id) already handled
    attempts: int  # failed attempts so far
    retry_at: float  # epoch seconds before which it must not run again (0.0: none)


@dataclass(frozen=True)
class LaneClaim:
    owner: str  # the chat lock's owner token
    items: tuple[LaneItem, ...]  # oldest first


class ChatLane(Protocol):
    """A chat's mailbox, lock and dedup marks as the drain uses them: a few coarse steps, each one round trip
    on a shared store (ChatMailbox, Locks and UpdateDeduplicator are the fine-grained ports it is made of)."""

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> LaneClaim | None:
        """Clears the chat's "drain due" flag, takes its lock and reads up to `batch` items from the head;
        None when another drain holds the chat."""
        ...

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool: ...

    def complete(
        self,
        bot_id: str,
        chat_key: str,
        owner: str,
        item: MailboxItem,
        update_id: int | None,
        *,
        mark_done: bool,
        ttl_seconds: float,
    ) -> bool:
        """If `owner` still holds the chat: marks the update done (when asked), pops exactly `item` from the head,
        clears its failures and extends the lock. False, changing nothing, when the lock was lost."""
        ...

    def complete_and_release(
        self,
        bot_id: str,
        chat_key: str,
        owner: str,
        item: MailboxItem,
        update_id: int | None,
        *,
        mark_done: bool,
    ) -> int | None:
        """`complete` then `release` in one step (the last item of a claim): the number of items left in the
        mailbox, or None, changing nothing, when the lock was lost."""
        ...

    def record_failure(self, bot_id: str, chat_key: str, update_id: int, retry_at: float) -> int: ...

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        """Releases the lock if still held by `owner`; the number of items left in the mailbox."""
        ...


@dataclass(frozen=True)
class DeadLetter:
    id: str
    kind: str  # "update" | "api_call" | "outbound"
    reason: str  # redacted
    attempts: int
    first_failure_at: float
    last_failure_at: float
    payload: dict[str, Any]


class DeadLetters(Protocol):
    def add(self, kind: str, payload: dict[str, Any], reason: str, attempts: int, first_failure_at: float) -> str:
        """Stores a failed job (reason is redacted by the adapter too); returns its id."""
        ...

    def list(self, limit: int = 100) -> list[DeadLetter]: ...

    def get(self, letter_id: str) -> DeadLetter | None: ...

    def remove(self, letter_id: str) -> bool: ...

    def purge(self) -> int: ...


class BotDirectory(Protocol):
    """Read side of the registry, as the dispatcher sees it."""

    def get_bot(self, bot_id: str) -> Bot | None: ...
