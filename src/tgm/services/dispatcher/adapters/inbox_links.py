"""InboxLinks (src/tgm/domain/inbox.py) on Redis, shared by every worker, and in memory (unit tests, embedded mode).

Redis keys, under tgm's prefix (the dispatcher's ACL user covers them, src/tgm/messaging/redis_acl.py):
- `tgm:inbox:link:<bot id>:<admin chat id>:<message id>` → the user's chat id, expiring after the link TTL. The bot
  id is part of the key: a lookup in one bot's namespace never finds another bot's message.
- `tgm:inbox:reach:<bot id>`: a set of the admins who wrote to the bot in private (no TTL: a few ids per bot).
"""

from __future__ import annotations

import threading
from typing import Any

from tgm.domain.clock import SystemClock
from tgm.domain.inbox import LINK_TTL_SECONDS
from tgm.domain.ports import Clock

KEY_PREFIX = "tgm:inbox"


class RedisInboxLinks:
    def __init__(self, client: Any, ttl_seconds: int = LINK_TTL_SECONDS, prefix: str = KEY_PREFIX) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix

    def _link_key(self, bot_id: str, admin_chat_id: int, message_id: int) -> str:
        return f"{self._prefix}:link:{bot_id}:{admin_chat_id}:{message_id}"

    def link(self, bot_id: str, admin_chat_id: int, message_id: int, user_chat_id: int) -> None:
        self._client.set(self._link_key(bot_id, admin_chat_id, message_id), str(user_chat_id), ex=self._ttl)

    def user_chat(self, bot_id: str, admin_chat_id: int, message_id: int) -> int | None:
        raw = self._client.get(self._link_key(bot_id, admin_chat_id, message_id))
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    def mark_reachable(self, bot_id: str, admin_id: int) -> None:
        self._client.sadd(f"{self._prefix}:reach:{bot_id}", str(admin_id))

    def reachable(self, bot_id: str, admin_id: int) -> bool:
        return bool(self._client.sismember(f"{self._prefix}:reach:{bot_id}", str(admin_id)))


class InMemoryInboxLinks:
    """The same in a dict, expiring by the clock's monotonic time; one process only."""

    def __init__(self, ttl_seconds: float = LINK_TTL_SECONDS, clock: Clock | None = None) -> None:
        self._ttl = ttl_seconds
        self._clock = clock or SystemClock()
        self._links: dict[tuple[str, int, int], tuple[int, float]] = {}
        self._reachable: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def link(self, bot_id: str, admin_chat_id: int, message_id: int, user_chat_id: int) -> None:
        now = self._clock.monotonic()
        with self._lock:
            if len(self._links) > 10_000:
                self._links = {key: value for key, value in self._links.items() if value[1] > now}
            self._links[(bot_id, admin_chat_id, message_id)] = (user_chat_id, now + self._ttl)

    def user_chat(self, bot_id: str, admin_chat_id: int, message_id: int) -> int | None:
        with self._lock:
            found = self._links.get((bot_id, admin_chat_id, message_id))
        if found is None or found[1] <= self._clock.monotonic():
            return None
        return found[0]

    def mark_reachable(self, bot_id: str, admin_id: int) -> None:
        with self._lock:
            self._reachable.add((bot_id, admin_id))

    def reachable(self, bot_id: str, admin_id: int) -> bool:
        with self._lock:
            return (bot_id, admin_id) in self._reachable
