"""ChatLane on Redis: each step of a chat drain is one Lua script (one round trip).

Same keys as the fine-grained adapters, so the two can meet on one Redis: the mailbox and its "drain due" flag
(src/tgm/messaging/mailbox.py), the lock (`tgm:lock:chat:<bot>:<chat>`, RedisLocks), the dedup marks
(`tgm:dedup:update:<bot>:<update_id>`, RedisUpdateDeduplicator) and the failures hash.

Per handled update that is claim (amortised over a batch of up to `batch` items), complete, release (the last item
of a claim completes and releases in one script): instead
of lock, renew, peek, exists, hmget, renew, set, pop, hdel, release and llen, each a round trip of its own.
"""

from __future__ import annotations

import secrets
from typing import Any

from tgm.domain.chat_lane import lock_key
from tgm.domain.ports import LaneClaim, LaneItem, MailboxItem
from tgm.messaging.envelope_signing import EnvelopeSigner
from tgm.messaging.mailbox import KEY_PREFIX, RedisChatMailbox, decode, drain_pending_key, mailbox_key
from tgm.observability.metrics import UPDATE_RETRIES
from tgm.services.dispatcher.adapters.redis_abuse import RedisLocks
from tgm.services.dispatcher.adapters.redis_dedup import DEFAULT_TTL_SECONDS
from tgm.services.dispatcher.adapters.redis_dedup import KEY_PREFIX as DEDUP_PREFIX
from tgm.services.dispatcher.adapters.sent_marks import SENT_TTL_SECONDS, DeferredSentMarks

LOCK_PREFIX = "tgm:lock"

# KEYS: mailbox, drain-due flag, lock, failures hash. ARGV: owner, ttl ms, batch, dedup key prefix ("...:<bot>:").
# Returns nil when the lock is held by another; else a flat list: raw, done (0/1), attempts, retry_at, ...
# The update id is read from the stored envelope with cjson; an item it cannot read comes back as done=0 with
# no failures (the drain drops it as malformed).
_CLAIM = """
redis.call('DEL', KEYS[2])
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local out = {}
for _, raw in ipairs(items) do
  local done, attempts, retry_at = 0, '0', '0'
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' and type(decoded['update_id']) == 'number' then
    local id = string.format('%d', decoded['update_id'])
    done = redis.call('EXISTS', ARGV[4] .. id)
    local f = redis.call('HMGET', KEYS[4], id .. ':n', id .. ':at')
    attempts = f[1] or '0'
    retry_at = f[2] or '0'
  end
  table.insert(out, raw)
  table.insert(out, done)
  table.insert(out, attempts)
  table.insert(out, retry_at)
end
return out
"""

# KEYS: mailbox, lock, failures hash, dedup key, then the sent marks of the update's direct sends (sent_marks.py).
# ARGV: owner, ttl ms, raw item, update id ('' if none), mark done (1/0), dedup ttl s, sent-mark ttl s.
# The sent marks are written whoever holds the lock (the replies went out); the rest only by the lock's owner.
# Returns 0 when the lock is not ours (nothing else changed), else 1.
_WRITE_SENT_MARKS = """
for i = 5, #KEYS do redis.call('SET', KEYS[i], '1', 'EX', ARGV[7]) end
"""

_COMPLETE = (
    _WRITE_SENT_MARKS
    + """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[5] == '1' then redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[6]) end
if redis.call('LINDEX', KEYS[1], 0) == ARGV[3] then redis.call('LPOP', KEYS[1]) end
if ARGV[4] ~= '' then redis.call('HDEL', KEYS[3], ARGV[4] .. ':n', ARGV[4] .. ':at') end
return 1
"""
)

# The same, then release the lock and answer the mailbox's length (the last item of a claim: one round trip
# instead of two). Returns -1 when the lock is not ours (nothing changed).
_COMPLETE_AND_RELEASE = (
    _WRITE_SENT_MARKS
    + """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if ARGV[5] == '1' then redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[6]) end
if redis.call('LINDEX', KEYS[1], 0) == ARGV[3] then redis.call('LPOP', KEYS[1]) end
if ARGV[4] ~= '' then redis.call('HDEL', KEYS[3], ARGV[4] .. ':n', ARGV[4] .. ':at') end
redis.call('DEL', KEYS[2])
return redis.call('LLEN', KEYS[1])
"""
)

# Shared by both lanes (this one and the outbox's, src/tgm/services/dispatcher/outbound/outbox_lane.py).
# KEYS: lock, list. ARGV: owner. Releases the lock if it is still the owner's; returns the list's length.
RELEASE_AND_COUNT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('LLEN', KEYS[2])
"""


def ms(seconds: float) -> int:
    """A TTL in whole milliseconds, at least 1 (Redis refuses PX 0)."""
    return max(1, round(seconds * 1000))


class RedisChatLane:
    def __init__(
        self,
        client: Any,
        *,
        dedup_ttl_seconds: int = DEFAULT_TTL_SECONDS,
        prefix: str = KEY_PREFIX,
        signer: EnvelopeSigner | None = None,
        sent_marks: DeferredSentMarks | None = None,
    ) -> None:
        self._client = client
        self._sent_marks = sent_marks
        self._signer = signer
        self._mailbox = RedisChatMailbox(client, prefix, signer=signer)
        self._prefix = prefix
        self._dedup_ttl = dedup_ttl_seconds
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._complete_and_release = client.register_script(_COMPLETE_AND_RELEASE)
        self._release = client.register_script(RELEASE_AND_COUNT)
        self._locks = RedisLocks(client, prefix=LOCK_PREFIX)  # renewals: the same owner-checked PEXPIRE

    def _lock(self, bot_id: str, chat_key: str) -> str:
        return f"{LOCK_PREFIX}:{lock_key(bot_id, chat_key)}"

    def _failures(self, bot_id: str, chat_key: str) -> str:
        return f"{self._prefix}-fail:{bot_id}:{chat_key}"

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> LaneClaim | None:
        owner = secrets.token_hex(16)
        keys = [
            mailbox_key(bot_id, chat_key, self._prefix),
            drain_pending_key(bot_id, chat_key, self._prefix),
            self._lock(bot_id, chat_key),
            self._failures(bot_id, chat_key),
        ]
        flat = self._claim(keys=keys, args=[owner, ms(ttl_seconds), max(1, batch), f"{DEDUP_PREFIX}:{bot_id}:"])
        if flat is None:
            return None
        items = tuple(
            LaneItem(
                decode(bytes(flat[i]), self._signer),
                done=bool(int(flat[i + 1])),
                attempts=int(flat[i + 2]),
                retry_at=float(flat[i + 3]),
            )
            for i in range(0, len(flat), 4)
        )
        return LaneClaim(owner, items)

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        return self._locks.renew(lock_key(bot_id, chat_key), owner, ttl_seconds)

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
        keys, args = self._completion(bot_id, chat_key, owner, item, update_id, mark_done, ttl_seconds)
        return bool(self._with_sent_marks(self._complete, keys, args))

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
        keys, args = self._completion(bot_id, chat_key, owner, item, update_id, mark_done, 1.0)
        left = int(self._with_sent_marks(self._complete_and_release, keys, args))
        return None if left < 0 else left

    def _with_sent_marks(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Runs a completion script with the sent marks this thread deferred (kept for the next try on failure)."""
        if self._sent_marks is None:
            return script(keys=keys, args=args)
        call_ids = self._sent_marks.take()
        try:
            return script(keys=keys + self._sent_marks.keys(call_ids), args=args)
        except BaseException:
            self._sent_marks.put_back(call_ids)
            raise

    def _write_deferred_sent_marks(self) -> None:
        if self._sent_marks is not None:
            self._sent_marks.write_pending()

    def _completion(
        self,
        bot_id: str,
        chat_key: str,
        owner: str,
        item: MailboxItem,
        update_id: int | None,
        mark_done: bool,
        ttl_seconds: float,
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV shared by the two completion scripts."""
        dedup_id = update_id if update_id is not None else 0
        keys = [
            mailbox_key(bot_id, chat_key, self._prefix),
            self._lock(bot_id, chat_key),
            self._failures(bot_id, chat_key),
            f"{DEDUP_PREFIX}:{bot_id}:{dedup_id}",
        ]
        args: list[Any] = [
            owner,
            ms(ttl_seconds),
            item.raw,
            "" if update_id is None else str(update_id),
            "1" if mark_done and update_id is not None else "0",
            self._dedup_ttl,
            SENT_TTL_SECONDS,
        ]
        return keys, args

    def record_failure(self, bot_id: str, chat_key: str, update_id: int, retry_at: float) -> int:
        self._write_deferred_sent_marks()  # a handler that replied, then failed: its replies went out
        UPDATE_RETRIES.inc()
        return self._mailbox.record_failure(bot_id, chat_key, update_id, retry_at)  # the rare path: as the mailbox does

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        self._write_deferred_sent_marks()  # a drain that lost its chat or failed before completing the update
        keys = [self._lock(bot_id, chat_key), mailbox_key(bot_id, chat_key, self._prefix)]
        return int(self._release(keys=keys, args=[owner]))
