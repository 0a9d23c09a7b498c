"""CaptchaStore (src/tgm/domain/captcha.py) on Redis, shared by every dispatcher process, and in memory (embedded).

Known users are a set per bot. `served` costs no round trip of its own: each process gathers the users it served,
and a background thread adds them once a second in one script, which also counts the bot's new users per minute
and, past the threshold, marks the bot under attack for `attack_seconds`; the script answers each bot's remaining
attack time, which is how a process knows (`under_attack` reads that, no round trip). A bot's first
`warmup_seconds` only learn users: when the feature meets a bot that already has users, they are not all "new".

While the CAPTCHA applies, `gate` is one round trip per update (known? open challenge? locked out?), `open` and
`answer` one each (atomic scripts: two taps racing cannot both pass, attempts are counted once each).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tgm.domain.captcha import AnswerOutcome, Gate
from tgm.domain.clock import SystemClock
from tgm.domain.ports import Clock

logger = logging.getLogger(__name__)

PREFIX = "tgm:captcha"
FLUSH_SECONDS = 1.0
MAX_PENDING_PER_BOT = 100_000
NEW_USERS_PER_MINUTE = 60
ATTACK_SECONDS = 900.0
WARMUP_SECONDS = 3600.0

# ARGV: prefix, threshold, attack s, warmup s, then per bot: bot id, n, n user ids.
# Returns per bot: bot id, seconds of attack left (<= 0: none).
_FLUSH = """
local t = redis.call('TIME')
local now = tonumber(t[1])
local prefix, threshold = ARGV[1], tonumber(ARGV[2])
local attack_seconds, warmup = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local i = 5
while i <= #ARGV do
  local bot, n = ARGV[i], tonumber(ARGV[i + 1])
  local known = prefix .. ':known:' .. bot
  local since_key = prefix .. ':since:' .. bot
  redis.call('SET', since_key, now, 'NX')
  local new = 0
  for j = 1, n do new = new + redis.call('SADD', known, ARGV[i + 1 + j]) end
  local attack = prefix .. ':attack:' .. bot
  if new > 0 then
    local bucket = prefix .. ':new:' .. bot .. ':' .. math.floor(now / 60)
    local count = redis.call('INCRBY', bucket, new)
    redis.call('EXPIRE', bucket, 120)
    if count > threshold and now - tonumber(redis.call('GET', since_key)) >= warmup then
      redis.call('SET', attack, '1', 'EX', attack_seconds)
    end
  end
  table.insert(out, bot)
  table.insert(out, redis.call('TTL', attack))
  i = i + 2 + n
end
return out
"""

# KEYS: known set, challenge hash, lock. ARGV: user. Returns known (0/1), answer (-1: none), lock ms left.
_GATE = """
local known = redis.call('SISMEMBER', KEYS[1], ARGV[1])
local answer = redis.call('HGET', KEYS[2], 'answer')
local locked = redis.call('PTTL', KEYS[3])
return {known, tonumber(answer or '-1'), locked > 0 and locked or 0}
"""

# KEYS: challenge hash. ARGV: answer, ttl ms, prefix, bot, threshold, attack s, warmup s.
# Returns {1 when opened (0 when one is open already), seconds of attack left}. A user challenged is a new user
# too: counted like the served ones, so a flood that keeps coming keeps the bot under attack.
_OPEN = """
local t = redis.call('TIME')
local now = tonumber(t[1])
local prefix, bot = ARGV[3], ARGV[4]
local attack = prefix .. ':attack:' .. bot
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('TTL', attack)} end
redis.call('HSET', KEYS[1], 'answer', ARGV[1], 'attempts', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local bucket = prefix .. ':new:' .. bot .. ':' .. math.floor(now / 60)
local count = redis.call('INCR', bucket)
redis.call('EXPIRE', bucket, 120)
local since = redis.call('GET', prefix .. ':since:' .. bot)
if count > tonumber(ARGV[5]) and since and now - tonumber(since) >= tonumber(ARGV[7]) then
  redis.call('SET', attack, '1', 'EX', ARGV[6])
end
return {1, redis.call('TTL', attack)}
"""

# KEYS: challenge hash, known set, lock. ARGV: choice, new answer, max attempts, lock ms, user.
# Returns {outcome, attempts left}: outcome 1 passed, 2 wrong, 3 locked, 0 none open.
_ANSWER = """
local answer = redis.call('HGET', KEYS[1], 'answer')
if not answer then return {0, 0} end
if tonumber(answer) == tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SADD', KEYS[2], ARGV[5])
  return {1, 0}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
  return {3, 0}
end
redis.call('HSET', KEYS[1], 'answer', ARGV[2])
return {2, tonumber(ARGV[3]) - attempts}
"""

_OUTCOMES = {0: AnswerOutcome.NONE_OPEN, 1: AnswerOutcome.PASSED, 2: AnswerOutcome.WRONG, 3: AnswerOutcome.LOCKED}


class RedisCaptchaStore:
    def __init__(
        self,
        client: Any,
        *,
        new_users_per_minute: int = NEW_USERS_PER_MINUTE,
        attack_seconds: float = ATTACK_SECONDS,
        warmup_seconds: float = WARMUP_SECONDS,
        flush_seconds: float = FLUSH_SECONDS,
        prefix: str = PREFIX,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prefix = prefix
        self._threshold = new_users_per_minute
        self._attack_seconds = max(1, round(attack_seconds))
        self._warmup_seconds = warmup_seconds
        self._flush_seconds = flush_seconds
        self._monotonic = monotonic
        self._flush = client.register_script(_FLUSH)
        self._gate = client.register_script(_GATE)
        self._open = client.register_script(_OPEN)
        self._answer = client.register_script(_ANSWER)
        self._pending: dict[str, set[int]] = {}
        self._pending_lock = threading.Lock()
        self._flushing = threading.Lock()
        self._attack_until: dict[str, float] = {}
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()

    def _keys(self, bot_id: str, user_id: int) -> tuple[str, str, str]:
        return (
            f"{self._prefix}:known:{bot_id}",
            f"{self._prefix}:ch:{bot_id}:{user_id}",
            f"{self._prefix}:lock:{bot_id}:{user_id}",
        )

    def served(self, bot_id: str, user_id: int) -> None:
        with self._pending_lock:
            users = self._pending.setdefault(bot_id, set())
            if len(users) < MAX_PENDING_PER_BOT:  # Redis down for long: the rest are learnt when they come back
                users.add(user_id)
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_forever, name="captcha-known-users", daemon=True)
                self._flusher.start()

    def _flush_forever(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
            except Exception as error:  # kept for the next flush; serving is not held up by bookkeeping
                logger.info("known users not flushed; kept for the next flush", extra={"error": type(error).__name__})

    def close(self) -> None:
        """Stops the background flush after one last one (best effort)."""
        self._stop.set()
        try:
            self.flush()
        except Exception as error:
            logger.info("known users not flushed at close", extra={"error": type(error).__name__})

    def flush(self) -> None:
        """Adds the users gathered here to the shared sets now (one round trip) and learns which bots are under
        attack. On failure the users stay gathered for the next flush."""
        with self._flushing:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._pending_lock:
            taken, self._pending = self._pending, {}
        if not taken:
            return
        args: list[Any] = [self._prefix, self._threshold, self._attack_seconds, self._warmup_seconds]
        for bot_id, users in taken.items():
            args += [bot_id, len(users), *sorted(users)]
        try:
            flat = self._flush(keys=[], args=args)
        except Exception:
            with self._pending_lock:
                for bot_id, users in taken.items():
                    self._pending.setdefault(bot_id, set()).update(users)
            raise
        for index in range(0, len(flat), 2):
            bot = flat[index].decode() if isinstance(flat[index], bytes) else str(flat[index])
            self._learn_attack(bot, int(flat[index + 1]))

    def under_attack(self, bot_id: str) -> bool:
        return self._attack_until.get(bot_id, 0.0) > self._monotonic()

    def gate(self, bot_id: str, user_id: int) -> Gate:
        known, answer, locked_ms = self._gate(keys=list(self._keys(bot_id, user_id)), args=[user_id])
        return Gate(
            known=bool(int(known)),
            open_answer=None if int(answer) < 0 else int(answer),
            locked_for_seconds=int(locked_ms) / 1000,
        )

    def open(self, bot_id: str, user_id: int, answer: int, ttl_seconds: float) -> bool:
        _, challenge, _ = self._keys(bot_id, user_id)
        args = [answer, max(1, round(ttl_seconds * 1000)), self._prefix, bot_id, self._threshold]
        opened, left = self._open(keys=[challenge], args=[*args, self._attack_seconds, self._warmup_seconds])
        self._learn_attack(bot_id, int(left))
        return bool(int(opened))

    def _learn_attack(self, bot_id: str, seconds_left: int) -> None:
        if seconds_left > 0:
            self._attack_until[bot_id] = self._monotonic() + seconds_left
        else:
            self._attack_until.pop(bot_id, None)

    def answer(
        self, bot_id: str, user_id: int, choice: int, new_answer: int, max_attempts: int, lock_seconds: float
    ) -> tuple[AnswerOutcome, int]:
        known, challenge, lock = self._keys(bot_id, user_id)
        code, left = self._answer(
            keys=[challenge, known, lock],
            args=[choice, new_answer, max_attempts, max(1, round(lock_seconds * 1000)), user_id],
        )
        return _OUTCOMES[int(code)], int(left)


class InMemoryCaptchaStore:
    """The same rules in one process (embedded mode, unit tests); time from the injected clock."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        new_users_per_minute: int = NEW_USERS_PER_MINUTE,
        attack_seconds: float = ATTACK_SECONDS,
        warmup_seconds: float = WARMUP_SECONDS,
    ) -> None:
        self._clock = clock or SystemClock()
        self._threshold = new_users_per_minute
        self._attack_seconds = attack_seconds
        self._warmup_seconds = warmup_seconds
        self._lock = threading.Lock()
        self._known: dict[str, set[int]] = {}
        self._since: dict[str, float] = {}
        self._new: dict[tuple[str, int], int] = {}
        self._attack_until: dict[str, float] = {}
        self._challenges: dict[tuple[str, int], tuple[int, int, float]] = {}  # answer, attempts, expires at
        self._locked_until: dict[tuple[str, int], float] = {}

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def served(self, bot_id: str, user_id: int) -> None:
        now = self._now()
        with self._lock:
            known = self._known.setdefault(bot_id, set())
            self._since.setdefault(bot_id, now)
            if user_id in known:
                return
            known.add(user_id)
            self._count_new(bot_id, now)

    def under_attack(self, bot_id: str) -> bool:
        return self._attack_until.get(bot_id, 0.0) > self._now()

    def gate(self, bot_id: str, user_id: int) -> Gate:
        now = self._now()
        with self._lock:
            challenge = self._challenges.get((bot_id, user_id))
            open_answer = challenge[0] if challenge is not None and challenge[2] > now else None
            return Gate(
                known=user_id in self._known.get(bot_id, set()),
                open_answer=open_answer,
                locked_for_seconds=max(0.0, self._locked_until.get((bot_id, user_id), 0.0) - now),
            )

    def open(self, bot_id: str, user_id: int, answer: int, ttl_seconds: float) -> bool:
        now = self._now()
        with self._lock:
            current = self._challenges.get((bot_id, user_id))
            if current is not None and current[2] > now:
                return False
            self._challenges = {key: c for key, c in self._challenges.items() if c[2] > now}  # expired ones go
            self._locked_until = {key: until for key, until in self._locked_until.items() if until > now}
            self._challenges[(bot_id, user_id)] = (answer, 0, now + ttl_seconds)
            self._count_new(bot_id, now)  # a challenged user is new too: a flood that goes on keeps the flag
            return True

    def _count_new(self, bot_id: str, now: float) -> None:
        minute = int(now // 60)
        self._new = {key: n for key, n in self._new.items() if key[1] >= minute - 1}
        count = self._new[(bot_id, minute)] = self._new.get((bot_id, minute), 0) + 1
        since = self._since.get(bot_id)
        if count > self._threshold and since is not None and now - since >= self._warmup_seconds:
            self._attack_until[bot_id] = now + self._attack_seconds

    def answer(
        self, bot_id: str, user_id: int, choice: int, new_answer: int, max_attempts: int, lock_seconds: float
    ) -> tuple[AnswerOutcome, int]:
        now = self._now()
        key = (bot_id, user_id)
        with self._lock:
            current = self._challenges.get(key)
            if current is None or current[2] <= now:
                return AnswerOutcome.NONE_OPEN, 0
            answer, attempts, expires = current
            if choice == answer:
                del self._challenges[key]
                self._known.setdefault(bot_id, set()).add(user_id)
                return AnswerOutcome.PASSED, 0
            attempts += 1
            if attempts >= max_attempts:
                del self._challenges[key]
                self._locked_until[key] = now + lock_seconds
                return AnswerOutcome.LOCKED, 0
            self._challenges[key] = (new_answer, attempts, expires)
            return AnswerOutcome.WRONG, max_attempts - attempts
