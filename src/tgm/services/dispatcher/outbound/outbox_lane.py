"""The outbox lane as DrainOutbox works it (the OutboxLane port): on Redis one Lua script per step, in memory made of
an OutboxStore and the Locks port. The keys are RedisOutboxStore's and RedisLocks'."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tgm.domain.ports import Locks
from tgm.services.dispatcher.adapters.redis_abuse import RedisLocks
from tgm.services.dispatcher.adapters.redis_chat_lane import RELEASE_AND_COUNT, ms
from tgm.services.dispatcher.adapters.sent_marks import OUTBOX_PREFIX, SENT_TTL_SECONDS, sent_mark_key
from tgm.services.dispatcher.outbound.ports import OutboxClaim, OutboxStore
from tgm.services.dispatcher.outbound.store import due_key


def _lane_lock(bot_id: str, chat_key: str) -> str:
    return f"obox:{bot_id}:{chat_key}"


class ComposedOutboxLane:
    """The lane made of an OutboxStore and the Locks port (in memory; one call per step)."""

    def __init__(self, store: OutboxStore, locks: Locks) -> None:
        self._store = store
        self._locks = locks

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> OutboxClaim | None:
        self._store.clear_drain_pending(bot_id, chat_key)
        owner = self._locks.acquire(_lane_lock(bot_id, chat_key), ttl_seconds)
        if owner is None:
            return None
        raw = self._store.peek(bot_id, chat_key)
        if raw is None:
            return OutboxClaim(owner, ())
        call_id = _call_id_of(raw)
        return OutboxClaim(owner, ((raw, call_id is not None and self._store.is_sent(call_id)),))

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        return self._locks.renew(_lane_lock(bot_id, chat_key), owner, ttl_seconds)

    def complete(
        self, bot_id: str, chat_key: str, owner: str, raw: bytes, call_id: str | None, *, sent: bool, ttl_seconds: float
    ) -> bool:
        if not self._locks.renew(_lane_lock(bot_id, chat_key), owner, ttl_seconds):
            return False
        if sent and call_id is not None:
            self._store.mark_sent(call_id)
        self._store.pop(bot_id, chat_key, raw)
        if call_id is not None:
            self._store.clear_failures(call_id)
        return True

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        self._locks.release(_lane_lock(bot_id, chat_key), owner)
        return self._store.size(bot_id, chat_key)


# KEYS: lane list, drain-due flag, lock. ARGV: owner, ttl ms, batch, sent-marker prefix ("<prefix>-sent:").
_CLAIM_LANE = """
redis.call('DEL', KEYS[2])
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local out = {}
for _, raw in ipairs(items) do
  local sent = 0
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' and type(decoded['id']) == 'string' then
    sent = redis.call('EXISTS', ARGV[4] .. decoded['id'])
  end
  table.insert(out, raw)
  table.insert(out, sent)
end
return out
"""

# KEYS: lane list, lock, sent marker, failures counter. ARGV: owner, ttl ms, raw, mark sent (1/0), sent ttl s.
_COMPLETE_LANE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[4] == '1' then redis.call('SET', KEYS[3], '1', 'EX', ARGV[5]) end
if redis.call('LINDEX', KEYS[1], 0) == ARGV[3] then redis.call('LPOP', KEYS[1]) end
redis.call('DEL', KEYS[4])
return 1
"""


class RedisOutboxLane:
    """OutboxLane on Redis, one Lua script per step; the same keys as RedisOutboxStore and RedisLocks."""

    def __init__(self, client: Any, prefix: str = OUTBOX_PREFIX, lock_prefix: str = "tgm:lock") -> None:
        self._prefix = prefix
        self._lock_prefix = lock_prefix
        self._claim = client.register_script(_CLAIM_LANE)
        self._complete = client.register_script(_COMPLETE_LANE)
        self._release = client.register_script(RELEASE_AND_COUNT)
        self._locks = RedisLocks(client, prefix=lock_prefix)  # renewals: the same owner-checked PEXPIRE

    def _list(self, bot_id: str, chat_key: str) -> str:
        return f"{self._prefix}:{bot_id}:{chat_key}"

    def _lock(self, bot_id: str, chat_key: str) -> str:
        return f"{self._lock_prefix}:{_lane_lock(bot_id, chat_key)}"

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> OutboxClaim | None:
        owner = uuid.uuid4().hex
        keys = [self._list(bot_id, chat_key), due_key(self._prefix, bot_id, chat_key), self._lock(bot_id, chat_key)]
        flat = self._claim(keys=keys, args=[owner, ms(ttl_seconds), max(1, batch), f"{self._prefix}-sent:"])
        if flat is None:
            return None
        return OutboxClaim(owner, tuple((bytes(flat[i]), bool(int(flat[i + 1]))) for i in range(0, len(flat), 2)))

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        return self._locks.renew(_lane_lock(bot_id, chat_key), owner, ttl_seconds)

    def complete(
        self, bot_id: str, chat_key: str, owner: str, raw: bytes, call_id: str | None, *, sent: bool, ttl_seconds: float
    ) -> bool:
        marker = call_id or ""
        keys = [
            self._list(bot_id, chat_key),
            self._lock(bot_id, chat_key),
            sent_mark_key(marker, self._prefix),
            f"{self._prefix}-fail:{marker}",
        ]
        args = [owner, ms(ttl_seconds), raw, "1" if sent and call_id else "0", SENT_TTL_SECONDS]
        return bool(self._complete(keys=keys, args=args))

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        return int(self._release(keys=[self._lock(bot_id, chat_key), self._list(bot_id, chat_key)], args=[owner]))


def _call_id_of(raw: bytes) -> str | None:
    """The id of a queued call, None when it is malformed (the drain drops it)."""
    try:
        call = json.loads(raw)
        return str(call["id"])
    except (ValueError, KeyError, TypeError):
        return None
