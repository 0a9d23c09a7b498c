"""RateLimiter, Cooldowns, Locks and the outbound SendLimiter on Redis, each one atomic Lua script or command.

Time comes from the Redis server (`TIME`), so every worker process measures against one clock.
"""

from __future__ import annotations

import math
import secrets
import uuid
from typing import Any

from tgm.domain.ports import RateDecision
from tgm.observability.metrics import INBOUND_REFUSED

# GCRA (generic cell rate algorithm): `limit` per `window`, bursts up to `limit`; one key holds the
# "theoretical arrival time". A refusal also sets the "notified" key NX for one window, and reports
# whether it was this call that set it (tell the user once per window, not once per message).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
-- Under one rule the TAT never runs more than a window ahead; one set by a stricter rule does until the limit
-- is relaxed: capped (and kept capped), the new rule is in force within one interval, not after the old backlog.
if tat > now + window then
  tat = now + window
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(window) + 1)
end
local new_tat = tat + interval
local allow_at = new_tat - window
if allow_at > now then
  local notify = 0
  if redis.call('SET', KEYS[2], '1', 'NX', 'PX', math.ceil(window)) then notify = 1 end
  return {0, math.ceil(allow_at - now), notify}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
return {1, 0, 0}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# A bot paused after a 429 (KEYS[3], set by _PAUSE) gets no slot until the pause ends.
# Sliding-window logs (sorted sets of grant times) for the bot and for the chat. Grants a slot in both
# or in neither; when refused returns the milliseconds until a slot frees up.
SEND_SLOT = """
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return paused end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i = 1, 2 do
  local limit = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local n = redis.call('ZCARD', KEYS[i])
  if n >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], n - limit, n - limit, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
-- Smoothing: at most ARGV[6] grants per ARGV[7] ms for the bot, so a second's budget is not spent in one
-- clump (clumps queue up on the way and arrive late, next to the following second's first sends).
local burst = tonumber(ARGV[6])
local burst_window = tonumber(ARGV[7])
local recent = redis.call('ZRANGEBYSCORE', KEYS[1], now - burst_window, '+inf', 'WITHSCORES')
local count = #recent / 2
if count >= burst then
  local w = tonumber(recent[2 * (count - burst) + 2]) + burst_window - now
  if w > wait then wait = w end
end
if wait > 0 then return math.ceil(wait) end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])
end
return 0
"""


_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 0
"""


_RATE_LIMITED = INBOUND_REFUSED.labels("rate_limit")
_COOLING_DOWN = INBOUND_REFUSED.labels("cooldown")


class RedisRateLimiter:
    def __init__(self, client: Any, prefix: str = "tgm:rl") -> None:
        self._prefix = prefix
        self._script = client.register_script(_GCRA)

    def hit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        allowed, wait_ms, notify = self._script(
            keys=[f"{self._prefix}:{key}", f"{self._prefix}-notified:{key}"],
            args=[limit, max(1, round(window_seconds * 1000))],
        )
        if allowed:
            return RateDecision(True)
        _RATE_LIMITED.inc()
        return RateDecision(False, retry_after_seconds=int(wait_ms) / 1000, notify=bool(notify))


class RedisCooldowns:
    def __init__(self, client: Any, prefix: str = "tgm:cd") -> None:
        self._client = client
        self._prefix = prefix

    def start(self, key: str, seconds: float) -> bool:
        started = bool(self._client.set(f"{self._prefix}:{key}", b"1", nx=True, px=max(1, math.ceil(seconds * 1000))))
        if not started:
            _COOLING_DOWN.inc()
        return started


class RedisLocks:
    """SET NX PX with a random owner token; release and renew compare the token first (Lua)."""

    def __init__(self, client: Any, prefix: str = "tgm:lock") -> None:
        self._client = client
        self._prefix = prefix
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    def acquire(self, key: str, ttl_seconds: float) -> str | None:
        owner = secrets.token_hex(16)
        ok = self._client.set(f"{self._prefix}:{key}", owner, nx=True, px=max(1, math.ceil(ttl_seconds * 1000)))
        return owner if ok else None

    def release(self, key: str, owner_token: str) -> bool:
        return bool(self._release(keys=[f"{self._prefix}:{key}"], args=[owner_token]))

    def renew(self, key: str, owner_token: str, ttl_seconds: float) -> bool:
        ms = max(1, math.ceil(ttl_seconds * 1000))
        return bool(self._renew(keys=[f"{self._prefix}:{key}"], args=[owner_token, ms]))


class RedisSendLimiter:
    """Telegram's outbound limits shared by every worker: per bot per second, per private chat per second,
    per group per minute. `margin` widens each window a little: grants are measured here, arrivals there."""

    def __init__(
        self,
        client: Any,
        per_bot_per_second: int = 30,
        per_chat_per_second: int = 1,
        per_group_per_minute: int = 20,
        margin: float = 0.1,
        prefix: str = "tgm:send",
        reserved_for_replies: int = 5,
    ) -> None:
        self._script = client.register_script(SEND_SLOT)
        self._spare = max(1, per_bot_per_second - reserved_for_replies)
        self._pause = client.register_script(_PAUSE)
        self._prefix = prefix
        self._per_bot = per_bot_per_second
        self._per_chat = per_chat_per_second
        self._per_group = per_group_per_minute
        self._scale = 1.0 + margin

    def slot_request(self, bot_id: str, chat_id: int | None, *, spare: bool = False) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of the send-slot script (`SEND_SLOT`) for one call; other scripts may embed it.
        `spare`: a broadcast's send, granted only below the bot's limit minus the replies' reserve."""
        per_bot = self._spare if spare else self._per_bot
        bot_window = round(1000 * self._scale)
        if chat_id is None:
            chat_key, chat_limit, chat_window = f"{self._prefix}:nochat:{bot_id}", 10**9, 1
        elif chat_id > 0:
            chat_key, chat_limit, chat_window = f"{self._prefix}:chat:{bot_id}:{chat_id}", self._per_chat, bot_window
        else:
            chat_key, chat_limit = f"{self._prefix}:chat:{bot_id}:{chat_id}", self._per_group
            chat_window = round(60_000 * self._scale)
        keys = [f"{self._prefix}:bot:{bot_id}", chat_key, f"{self._prefix}:pause:{bot_id}"]
        args: list[Any] = [
            per_bot,
            bot_window,
            chat_limit,
            chat_window,
            uuid.uuid4().hex,
            max(1, math.ceil(per_bot / 4)),
            max(1, bot_window // 4),
        ]
        return keys, args

    def acquire(self, bot_id: str, chat_id: int | None) -> float:
        """0 when a slot was granted, else seconds to wait (nothing is counted then)."""
        keys, args = self.slot_request(bot_id, chat_id)
        return int(self._script(keys=keys, args=args)) / 1000

    def acquire_spare(self, bot_id: str, chat_id: int) -> float:
        """A broadcast's slot (src/tgm/domain/use_cases/broadcast.py): the same windows as `acquire`, so replies and
        broadcasts count against one budget, but granted only while the bot's window holds fewer than its limit
        minus `reserved_for_replies` grants. Replies may always use the whole limit: they come first, and a burst
        of replies leaves the broadcast waiting rather than the other way round."""
        keys, args = self.slot_request(bot_id, chat_id, spare=True)
        return int(self._script(keys=keys, args=args)) / 1000

    def pause(self, bot_id: str, seconds: float) -> None:
        self._pause(keys=[f"{self._prefix}:pause:{bot_id}"], args=[max(1, math.ceil(seconds * 1000))])
