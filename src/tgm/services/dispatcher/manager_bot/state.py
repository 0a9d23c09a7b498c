"""ConversationStore and AdminSessions: Redis (shared by every worker) and in-memory (embedded, tests)."""

from __future__ import annotations

import threading
from typing import Any

from tgm.domain.clock import SystemClock
from tgm.domain.ports import Clock

CONVERSATION_PREFIX = "tgm:mgr:conv"
SESSION_PREFIX = "tgm:mgr:session"
USED_BUTTON_PREFIX = "tgm:mgr:used"
MAX_STATE_CHARS = 128


class _MemoryTtl:
    def __init__(self, clock: Clock | None) -> None:
        self._clock = clock or SystemClock()
        self._items: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= self._clock.monotonic():
                del self._items[key]
                return None
            return item[1]

    def set(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._items[key] = (self._clock.monotonic() + ttl, value)
            if len(self._items) > 10_000:
                now = self._clock.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[0] > now}

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


class InMemoryConversationStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._items = _MemoryTtl(clock)

    def get(self, chat_id: int, user_id: int) -> str | None:
        return self._items.get(f"{chat_id}:{user_id}")

    def set(self, chat_id: int, user_id: int, state: str, ttl_seconds: int) -> None:
        self._items.set(f"{chat_id}:{user_id}", state[:MAX_STATE_CHARS], ttl_seconds)

    def clear(self, chat_id: int, user_id: int) -> None:
        self._items.delete(f"{chat_id}:{user_id}")


class InMemoryAdminSessions:
    def __init__(self, clock: Clock | None = None) -> None:
        self._items = _MemoryTtl(clock)

    def is_fresh(self, user_id: int) -> bool:
        return self._items.get(str(user_id)) is not None

    def touch(self, user_id: int, ttl_seconds: int) -> None:
        self._items.set(str(user_id), "1", ttl_seconds)


class RedisConversationStore:
    """One key per (chat, user) with the TTL on the key itself. Values are state names and bot ids only."""

    def __init__(self, client: Any, prefix: str = CONVERSATION_PREFIX) -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, chat_id: int, user_id: int) -> str:
        return f"{self._prefix}:{chat_id}:{user_id}"

    def get(self, chat_id: int, user_id: int) -> str | None:
        value = self._client.get(self._key(chat_id, user_id))
        return value.decode() if isinstance(value, bytes) else value

    def set(self, chat_id: int, user_id: int, state: str, ttl_seconds: int) -> None:
        self._client.set(self._key(chat_id, user_id), state[:MAX_STATE_CHARS], ex=max(1, int(ttl_seconds)))

    def clear(self, chat_id: int, user_id: int) -> None:
        self._client.delete(self._key(chat_id, user_id))


class RedisAdminSessions:
    def __init__(self, client: Any, prefix: str = SESSION_PREFIX) -> None:
        self._client = client
        self._prefix = prefix

    def is_fresh(self, user_id: int) -> bool:
        return bool(self._client.exists(f"{self._prefix}:{user_id}"))

    def touch(self, user_id: int, ttl_seconds: int) -> None:
        self._client.set(f"{self._prefix}:{user_id}", b"1", ex=max(1, int(ttl_seconds)))


class InMemoryUsedButtons:
    def __init__(self, clock: Clock | None = None) -> None:
        self._items = _MemoryTtl(clock)
        self._lock = threading.Lock()

    def use_once(self, token_id: str, ttl_seconds: int) -> bool:
        with self._lock:
            if self._items.get(token_id) is not None:
                return False
            self._items.set(token_id, "1", ttl_seconds)
            return True


class RedisUsedButtons:
    """SET NX with the token's lifetime: one press wins across every worker process."""

    def __init__(self, client: Any, prefix: str = USED_BUTTON_PREFIX) -> None:
        self._client = client
        self._prefix = prefix

    def use_once(self, token_id: str, ttl_seconds: int) -> bool:
        return bool(self._client.set(f"{self._prefix}:{token_id}", b"1", nx=True, ex=max(1, int(ttl_seconds))))
