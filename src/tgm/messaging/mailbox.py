"""ChatMailbox adapters: per-(bot, chat) FIFO lists of update envelopes.

Redis (shared by the gateway and every worker process) and in-memory (embedded mode: one process).
Items are the envelope's JSON: ids and the update, never a token. On Redis they carry the gateway's integrity tag
(envelope_signing.py): a dispatcher with the key drops an item whose tag is missing or wrong.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections import deque
from typing import Any

import dramatiq
import orjson

from tgm.domain.ports import MailboxItem
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.envelope_signing import EnvelopeSigner, strip_tag

logger = logging.getLogger(__name__)

KEY_PREFIX = "tgm:mbox"
FAILURES_TTL_SECONDS = 7 * 24 * 3600
# Updates waiting per chat, at most: a flood from one chat cannot fill Redis. Telegram delivers a chat's
# updates in order and a normal chat has a handful waiting; beyond the cap the update is dropped (logged).
MAX_ITEMS_PER_CHAT = 500
# "A drain is due for this chat" lives this long at most: a safety net only (the drain clears it when it starts;
# a worker that dies holding its message gets it redelivered, and the next push after expiry schedules again).
DRAIN_PENDING_TTL_MS = 60_000

_PUSH_CAPPED = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""

# Pops the head only if it is still the item the caller worked on (a lost lock cannot pop a newer item).
POP_IF_HEAD = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then
  redis.call('LPOP', KEYS[1])
  return 1
end
return 0
"""


class UnencodableUpdate(ValueError):
    """An update no encoder on the path can carry (e.g. nested deeper than they go): retrying cannot help."""


def encode(envelope: UpdateEnvelope, signer: EnvelopeSigner | None = None) -> bytes:
    body = _encode(envelope)
    return body if signer is None else signer.seal(body)


def _encode(envelope: UpdateEnvelope) -> bytes:
    try:
        return orjson.dumps(envelope.to_message())
    except TypeError:
        # Lone UTF-16 surrogates (valid JSON escapes, not valid UTF-8) or nesting deeper than orjson writes (255):
        # stdlib json keeps surrogates as \uXXXX escapes, which `decode` reads back exactly.
        try:
            return json.dumps(envelope.to_message(), separators=(",", ":")).encode("ascii")
        except (RecursionError, ValueError, TypeError) as error:
            raise UnencodableUpdate(f"update cannot be encoded ({type(error).__name__})") from None


def decode(raw: bytes, signer: EnvelopeSigner | None = None) -> MailboxItem:
    """The item as stored (`raw`, what `pop` compares) and its envelope; None for an item that cannot be read or,
    with a signer, whose integrity tag is missing or wrong (forged or altered in Redis: dropped by the drain)."""
    if signer is None:
        body = strip_tag(raw)  # a development run without ENVELOPE_SIGNING_KEY
    else:
        opened = signer.open(raw)
        if opened is None:
            logger.warning("mailbox item without a valid integrity tag: dropped (forged or altered in Redis)")
            return MailboxItem(raw=raw, envelope=None)
        body = opened
    try:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = json.loads(body)  # the surrogate-escaped form written by `encode`
        envelope = UpdateEnvelope.from_message(data) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError, RecursionError):
        envelope = None
    return MailboxItem(raw=raw, envelope=envelope)


def mailbox_key(bot_id: str, chat_key: str, prefix: str = KEY_PREFIX) -> str:
    return f"{prefix}:{bot_id}:{chat_key}"


def drain_pending_key(bot_id: str, chat_key: str, prefix: str = KEY_PREFIX) -> str:
    return f"{prefix}-due:{bot_id}:{chat_key}"


class RedisChatMailbox:
    def __init__(
        self,
        client: Any,
        prefix: str = KEY_PREFIX,
        max_items: int = MAX_ITEMS_PER_CHAT,
        signer: EnvelopeSigner | None = None,
    ) -> None:
        self._client = client
        self._signer = signer
        self._prefix = prefix
        self._max_items = max_items
        self._pop_if_head = client.register_script(POP_IF_HEAD)
        self._push_capped = client.register_script(_PUSH_CAPPED)

    def _key(self, bot_id: str, chat_key: str) -> str:
        return mailbox_key(bot_id, chat_key, self._prefix)

    def _fail_key(self, bot_id: str, chat_key: str) -> str:
        return f"{self._prefix}-fail:{bot_id}:{chat_key}"

    def push(self, chat_key: str, envelope: UpdateEnvelope) -> bool:
        key = self._key(envelope.bot_id, chat_key)
        return bool(self._push_capped(keys=[key], args=[encode(envelope, self._signer), self._max_items]))

    def peek(self, bot_id: str, chat_key: str) -> MailboxItem | None:
        raw = self._client.lindex(self._key(bot_id, chat_key), 0)
        return None if raw is None else decode(bytes(raw), self._signer)

    def pop(self, bot_id: str, chat_key: str, item: MailboxItem) -> bool:
        return bool(self._pop_if_head(keys=[self._key(bot_id, chat_key)], args=[item.raw]))

    def size(self, bot_id: str, chat_key: str) -> int:
        return int(self._client.llen(self._key(bot_id, chat_key)))

    def mark_drain_pending(self, bot_id: str, chat_key: str) -> bool:
        key = drain_pending_key(bot_id, chat_key, self._prefix)
        return bool(self._client.set(key, b"1", nx=True, px=DRAIN_PENDING_TTL_MS))

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        self._client.delete(drain_pending_key(bot_id, chat_key, self._prefix))

    def record_failure(self, bot_id: str, chat_key: str, update_id: int, retry_at: float) -> int:
        key = self._fail_key(bot_id, chat_key)
        pipe = self._client.pipeline(transaction=True)
        pipe.hincrby(key, f"{update_id}:n", 1)
        pipe.hset(key, f"{update_id}:at", repr(retry_at))
        pipe.expire(key, FAILURES_TTL_SECONDS)
        attempts = pipe.execute()[0]
        return int(attempts)

    def failures(self, bot_id: str, chat_key: str, update_id: int) -> tuple[int, float]:
        count, at = self._client.hmget(self._fail_key(bot_id, chat_key), f"{update_id}:n", f"{update_id}:at")
        return (int(count) if count else 0, float(at) if at else 0.0)

    def clear_failures(self, bot_id: str, chat_key: str, update_id: int) -> None:
        self._client.hdel(self._fail_key(bot_id, chat_key), f"{update_id}:n", f"{update_id}:at")


class InMemoryChatMailbox:
    def __init__(self, max_items: int = MAX_ITEMS_PER_CHAT) -> None:
        self._max_items = max_items
        self._lists: dict[tuple[str, str], deque[bytes]] = {}
        self._failures: dict[tuple[str, str, int], tuple[int, float]] = {}
        self._pending: dict[tuple[str, str], float] = {}  # chat → monotonic expiry of "a drain is due"
        self._lock = threading.Lock()

    def push(self, chat_key: str, envelope: UpdateEnvelope) -> bool:
        with self._lock:
            items = self._lists.setdefault((envelope.bot_id, chat_key), deque())
            if len(items) >= self._max_items:
                return False
            items.append(encode(envelope))
            return True

    def peek(self, bot_id: str, chat_key: str) -> MailboxItem | None:
        with self._lock:
            items = self._lists.get((bot_id, chat_key))
            raw = items[0] if items else None
        return None if raw is None else decode(raw)

    def pop(self, bot_id: str, chat_key: str, item: MailboxItem) -> bool:
        with self._lock:
            items = self._lists.get((bot_id, chat_key))
            if not items or items[0] != item.raw:
                return False
            items.popleft()
            if not items:
                del self._lists[(bot_id, chat_key)]
            return True

    def size(self, bot_id: str, chat_key: str) -> int:
        with self._lock:
            return len(self._lists.get((bot_id, chat_key), ()))

    def mark_drain_pending(self, bot_id: str, chat_key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._pending.get((bot_id, chat_key), 0.0) > now:
                return False
            self._pending[(bot_id, chat_key)] = now + DRAIN_PENDING_TTL_MS / 1000
            return True

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        with self._lock:
            self._pending.pop((bot_id, chat_key), None)

    def record_failure(self, bot_id: str, chat_key: str, update_id: int, retry_at: float) -> int:
        with self._lock:
            count, _ = self._failures.get((bot_id, chat_key, update_id), (0, 0.0))
            self._failures[(bot_id, chat_key, update_id)] = (count + 1, retry_at)
            return count + 1

    def failures(self, bot_id: str, chat_key: str, update_id: int) -> tuple[int, float]:
        with self._lock:
            return self._failures.get((bot_id, chat_key, update_id), (0, 0.0))

    def clear_failures(self, bot_id: str, chat_key: str, update_id: int) -> None:
        with self._lock:
            self._failures.pop((bot_id, chat_key, update_id), None)


_IN_MEMORY: weakref.WeakKeyDictionary[dramatiq.Broker, InMemoryChatMailbox] = weakref.WeakKeyDictionary()
_IN_MEMORY_LOCK = threading.Lock()


def in_memory_mailbox_for(broker: dramatiq.Broker) -> InMemoryChatMailbox:
    """The one in-memory mailbox of an in-process broker: the embedded gateway pushes to it, its dispatcher drains."""
    with _IN_MEMORY_LOCK:
        mailbox = _IN_MEMORY.get(broker)
        if mailbox is None:
            mailbox = _IN_MEMORY[broker] = InMemoryChatMailbox()
        return mailbox
