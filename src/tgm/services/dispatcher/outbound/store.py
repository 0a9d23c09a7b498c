"""Where outbound calls wait: one Redis list per (bot, chat) lane, pushed once per call id, with the calls' sent
marks and failure counters beside it; and the same in memory (embedded mode, tests)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from tgm.messaging.mailbox import POP_IF_HEAD
from tgm.services.dispatcher.adapters.sent_marks import OUTBOX_PREFIX, SENT_TTL_SECONDS, sent_mark_key

DRAIN_DUE_TTL_MS = 60_000  # safety net only: a drain clears its lane's "drain due" flag when it starts

# Idempotent push: a call id is queued at most once (a re-run handler derives the same ids, see
# src/tgm/domain/effects.py); the marker outlives any redelivery.
_PUSH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


# Push once, and raise the lane's "drain due" flag: returns pushed (1) + flag newly raised (2).
_PUSH_ONCE_AND_MARK = """
local pushed = 0
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  pushed = 1
end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then return pushed + 2 end
return pushed
"""


def due_key(prefix: str, bot_id: str, chat_key: str) -> str:
    """The lane's "drain due" flag (raised by push_and_mark, cleared by the drain's claim)."""
    return f"{prefix}-due:{bot_id}:{chat_key}"


class RedisOutboxStore:
    def __init__(self, client: Any, prefix: str = OUTBOX_PREFIX) -> None:
        self._client = client
        self._prefix = prefix
        self._pop_if_head = client.register_script(POP_IF_HEAD)
        self._push_once = client.register_script(_PUSH_ONCE)
        self._push_once_and_mark = client.register_script(_PUSH_ONCE_AND_MARK)

    def _key(self, bot_id: str, chat_key: str) -> str:
        return f"{self._prefix}:{bot_id}:{chat_key}"

    def _due_key(self, bot_id: str, chat_key: str) -> str:
        return due_key(self._prefix, bot_id, chat_key)

    def push(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> bool:
        keys = [f"{self._prefix}-q:{call_id}", self._key(bot_id, chat_key)]
        return bool(self._push_once(keys=keys, args=[raw, SENT_TTL_SECONDS]))

    def push_and_mark(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> tuple[bool, bool]:
        keys = [f"{self._prefix}-q:{call_id}", self._key(bot_id, chat_key), self._due_key(bot_id, chat_key)]
        outcome = int(self._push_once_and_mark(keys=keys, args=[raw, SENT_TTL_SECONDS, DRAIN_DUE_TTL_MS]))
        return bool(outcome & 1), bool(outcome & 2)

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        self._client.delete(self._due_key(bot_id, chat_key))

    def peek(self, bot_id: str, chat_key: str) -> bytes | None:
        raw = self._client.lindex(self._key(bot_id, chat_key), 0)
        return None if raw is None else bytes(raw)

    def pop(self, bot_id: str, chat_key: str, raw: bytes) -> bool:
        return bool(self._pop_if_head(keys=[self._key(bot_id, chat_key)], args=[raw]))

    def size(self, bot_id: str, chat_key: str) -> int:
        return int(self._client.llen(self._key(bot_id, chat_key)))

    def is_sent(self, call_id: str) -> bool:
        return bool(self._client.exists(sent_mark_key(call_id, self._prefix)))

    def mark_sent(self, call_id: str) -> None:
        self._client.set(sent_mark_key(call_id, self._prefix), b"1", ex=SENT_TTL_SECONDS)

    def record_failure(self, call_id: str) -> int:
        key = f"{self._prefix}-fail:{call_id}"
        pipe = self._client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, SENT_TTL_SECONDS)
        return int(pipe.execute()[0])

    def clear_failures(self, call_id: str) -> None:
        self._client.delete(f"{self._prefix}-fail:{call_id}")


class InMemoryOutboxStore:
    def __init__(self) -> None:
        self._lists: dict[tuple[str, str], deque[bytes]] = {}
        self._sent: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._queued: dict[str, float] = {}
        self._due: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def push(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._queued.get(call_id, 0.0) > now:
                return False
            if len(self._queued) > 10_000:
                self._queued = {k: v for k, v in self._queued.items() if v > now}
            self._queued[call_id] = now + SENT_TTL_SECONDS
            self._lists.setdefault((bot_id, chat_key), deque()).append(raw)
            return True

    def push_and_mark(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> tuple[bool, bool]:
        pushed = self.push(bot_id, chat_key, raw, call_id)
        now = time.monotonic()
        with self._lock:
            if self._due.get((bot_id, chat_key), 0.0) > now:
                return pushed, False
            self._due[(bot_id, chat_key)] = now + DRAIN_DUE_TTL_MS / 1000
            return pushed, True

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        with self._lock:
            self._due.pop((bot_id, chat_key), None)

    def peek(self, bot_id: str, chat_key: str) -> bytes | None:
        with self._lock:
            items = self._lists.get((bot_id, chat_key))
            return items[0] if items else None

    def pop(self, bot_id: str, chat_key: str, raw: bytes) -> bool:
        with self._lock:
            items = self._lists.get((bot_id, chat_key))
            if not items or items[0] != raw:
                return False
            items.popleft()
            if not items:
                del self._lists[(bot_id, chat_key)]
            return True

    def size(self, bot_id: str, chat_key: str) -> int:
        with self._lock:
            return len(self._lists.get((bot_id, chat_key), ()))

    def is_sent(self, call_id: str) -> bool:
        with self._lock:
            return self._sent.get(call_id, 0.0) > time.monotonic()

    def mark_sent(self, call_id: str) -> None:
        with self._lock:
            now = time.monotonic()
            if len(self._sent) > 10_000:
                self._sent = {k: v for k, v in self._sent.items() if v > now}
            self._sent[call_id] = now + SENT_TTL_SECONDS

    def record_failure(self, call_id: str) -> int:
        with self._lock:
            self._failures[call_id] = self._failures.get(call_id, 0) + 1
            return self._failures[call_id]

    def clear_failures(self, call_id: str) -> None:
        with self._lock:
            self._failures.pop(call_id, None)
