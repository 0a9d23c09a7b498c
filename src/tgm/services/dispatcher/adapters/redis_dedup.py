"""UpdateDeduplicator on Redis: one key per (bot, update_id), set only after the update was handled."""

from __future__ import annotations

import redis

DEFAULT_TTL_SECONDS = 24 * 3600
KEY_PREFIX = "tgm:dedup:update"


class RedisUpdateDeduplicator:
    def __init__(self, client: redis.Redis, ttl_seconds: int = DEFAULT_TTL_SECONDS, prefix: str = KEY_PREFIX) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix

    def _key(self, bot_id: str, update_id: int) -> str:
        return f"{self._prefix}:{bot_id}:{update_id}"

    def already_done(self, bot_id: str, update_id: int) -> bool:
        return bool(self._client.exists(self._key(bot_id, update_id)))

    def mark_done(self, bot_id: str, update_id: int) -> None:
        # NX keeps the first mark's expiry; a second mark of the same update changes nothing.
        self._client.set(self._key(bot_id, update_id), b"1", nx=True, ex=self._ttl)
