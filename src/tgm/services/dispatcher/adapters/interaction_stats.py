"""Per-update stats off the hot path (issue 8): counted in Redis (or memory) and flushed to the registry in batches.

The router calls `record` after each managed-bot answer: a dict update in the process (SpillingRecorder), moved to
Redis in one round trip every 0.2 s (or in embedded mode, the dict is all there is). Entries coalesce per (bot,
user): the messages counted, the last language and the last-seen time. One flusher thread per dispatcher process
takes pending bots atomically (a Lua script: SPOP the dirty bots, HGETALL + DEL their hashes), so two processes
never send the same entry, and sends them with RecordInteractions. A failed send puts the batch back, merged with
whatever arrived since.

Redis keys (prefix `tgm:stats`): `{prefix}:dirty` set of bot ids with pending entries; `{prefix}:n:{bot}` hash
user id → updates counted; `{prefix}:u:{bot}` hash user id → "<last seen unix ms> <language>". The scripts build
per-bot key names themselves, so this needs a single (non-cluster) Redis, as the other dispatcher adapters do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tgm.domain.administration.ports import Interaction, InteractionSink, PendingInteractions
from tgm.domain.administration.setting_rules import InvalidSetting
from tgm.domain.clock import SystemClock
from tgm.domain.ports import Clock

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "tgm:stats"
BATCH_SIZE = 500  # entries per RecordInteractions call (the registry takes up to 1000)
MAX_BOTS_PER_TAKE = 100
MAX_TAKES_PER_FLUSH = 50  # under a constant stream a flush still ends; the rest waits for the next one
SPILL_SECONDS = 0.2  # how long a process gathers counts in memory before moving them to Redis in one round trip


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


# ------------------------------------------------------------------------------------------------ in memory


@dataclass
class _Pending:
    messages: int
    language_code: str | None
    seen_ms: int


def _merge(into: _Pending | None, messages: int, language_code: str | None, seen_ms: int) -> _Pending:
    """Counts add up; the later time wins, and its language unless it has none."""
    if into is None:
        return _Pending(messages, language_code, seen_ms)
    into.messages += messages
    if seen_ms >= into.seen_ms:
        into.seen_ms = seen_ms
        into.language_code = language_code or into.language_code
    elif into.language_code is None:
        into.language_code = language_code
    return into


class InMemoryInteractionBuffer:
    """Recorder and pending store in one process (embedded mode): a dict under a lock, no I/O."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._pending: dict[str, dict[int, _Pending]] = {}
        self._lock = threading.Lock()

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        seen_ms = _ms(self._clock.now())
        with self._lock:
            users = self._pending.setdefault(bot_id, {})
            users[telegram_user_id] = _merge(users.get(telegram_user_id), 1, language_code or None, seen_ms)

    def take(self, max_bots: int) -> list[Interaction]:
        with self._lock:
            bots = list(self._pending)[:max_bots]
            taken = {bot: self._pending.pop(bot) for bot in bots}
        return [
            Interaction(bot, user, entry.language_code, _from_ms(entry.seen_ms), entry.messages)
            for bot, users in taken.items()
            for user, entry in users.items()
        ]

    def put_back(self, interactions: Sequence[Interaction]) -> None:
        with self._lock:
            for item in interactions:
                users = self._pending.setdefault(item.bot_id, {})
                users[item.telegram_user_id] = _merge(
                    users.get(item.telegram_user_id), item.messages, item.language_code, _ms(item.seen_at)
                )

    def pending_count(self) -> int:
        with self._lock:
            return sum(len(users) for users in self._pending.values())


# ------------------------------------------------------------------------------------------------ Redis

# KEYS[1] dirty set; ARGV[1] key prefix, ARGV[2] how many bots. Returns [bot, counts, users, bot, counts, users, …].
_TAKE = """
local bots = redis.call('SPOP', KEYS[1], tonumber(ARGV[2]))
local out = {}
for _, bot in ipairs(bots) do
  local counts = ARGV[1] .. ':n:' .. bot
  local users = ARGV[1] .. ':u:' .. bot
  out[#out + 1] = bot
  out[#out + 1] = redis.call('HGETALL', counts)
  out[#out + 1] = redis.call('HGETALL', users)
  redis.call('DEL', counts, users)
end
return out
"""

# KEYS[1] dirty set; ARGV[1] key prefix, then groups of 5: bot, user, messages, seen ms, language ("" = none).
_PUT_BACK = """
for i = 2, #ARGV, 5 do
  local bot, user, messages, seen, language = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  local users = ARGV[1] .. ':u:' .. bot
  redis.call('HINCRBY', ARGV[1] .. ':n:' .. bot, user, messages)
  local current = redis.call('HGET', users, user)
  if not current then
    redis.call('HSET', users, user, seen .. ' ' .. language)
  else
    local space = string.find(current, ' ', 1, true)
    local current_seen = tonumber(string.sub(current, 1, space - 1))
    local current_language = string.sub(current, space + 1)
    if seen >= current_seen then
      if language == '' then language = current_language end
      redis.call('HSET', users, user, seen .. ' ' .. language)
    elseif current_language == '' and language ~= '' then
      redis.call('HSET', users, user, current_seen .. ' ' .. language)
    end
  end
  redis.call('SADD', KEYS[1], bot)
end
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


class RedisInteractionBuffer:
    """Recorder and pending store shared by every dispatcher process (a sync redis-py client)."""

    def __init__(self, client: Any, prefix: str = DEFAULT_PREFIX, clock: Clock | None = None) -> None:
        self._client = client
        self._prefix = prefix
        self._dirty = f"{prefix}:dirty"
        self._clock = clock or SystemClock()
        self._take = client.register_script(_TAKE)
        self._put_back = client.register_script(_PUT_BACK)

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        """One round trip; MULTI/EXEC so a concurrent take sees the count and the last-seen together."""
        user = str(telegram_user_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.hincrby(f"{self._prefix}:n:{bot_id}", user, 1)
        pipe.hset(f"{self._prefix}:u:{bot_id}", user, f"{_ms(self._clock.now())} {language_code or ''}")
        pipe.sadd(self._dirty, bot_id)
        pipe.execute()

    def take(self, max_bots: int) -> list[Interaction]:
        flat = self._take(keys=[self._dirty], args=[self._prefix, max_bots])
        taken: list[Interaction] = []
        now_ms = _ms(self._clock.now())
        for i in range(0, len(flat), 3):
            bot, counts, users = _text(flat[i]), _pairs(flat[i + 1]), _pairs(flat[i + 2])
            for user in counts.keys() | users.keys():
                seen, _, language = users.get(user, f"{now_ms} ").partition(" ")
                taken.append(
                    Interaction(bot, int(user), language or None, _from_ms(int(seen)), int(counts.get(user, "1")))
                )
        return taken

    def put_back(self, interactions: Sequence[Interaction]) -> None:
        if not interactions:
            return
        args: list[Any] = [self._prefix]
        for item in interactions:
            args += [item.bot_id, item.telegram_user_id, item.messages, _ms(item.seen_at), item.language_code or ""]
        self._put_back(keys=[self._dirty], args=args)

    def pending_count(self) -> int:
        """Entries waiting (tests and diagnostics; not atomic)."""
        bots = [_text(bot) for bot in self._client.smembers(self._dirty)]
        return sum(int(self._client.hlen(f"{self._prefix}:n:{bot}")) for bot in bots)


class SpillingRecorder:
    """The process's front of the shared Redis buffer: `record` is a dict update, and what gathered moves to Redis
    in one round trip (merged per bot and user) every `spill_seconds`, from whichever thread records then, and
    before every `take`. So a handled update costs no Redis round trip of its own; a `kill -9` loses at most the
    last `spill_seconds` of counts (stats are best effort), a clean stop none (the flusher's last take spills).
    """

    def __init__(
        self,
        shared: RedisInteractionBuffer,
        clock: Clock | None = None,
        spill_seconds: float = SPILL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared = shared
        self._local = InMemoryInteractionBuffer(clock)
        self._spill_seconds = spill_seconds
        self._monotonic = monotonic
        self._next_spill = monotonic() + spill_seconds
        self._spilling = threading.Lock()

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        self._local.record(bot_id, telegram_user_id, language_code)
        if self._monotonic() >= self._next_spill and self._spilling.acquire(blocking=False):
            try:
                self._spill()
            except Exception as error:  # kept in memory for the next spill; the answer is not held up
                logger.info("interaction spill failed; kept in memory", extra={"error": type(error).__name__})
            finally:
                self._spilling.release()

    def _spill(self) -> None:
        self._next_spill = self._monotonic() + self._spill_seconds
        gathered = self._local.take(max_bots=1 << 30)
        if not gathered:
            return
        try:
            self._shared.put_back(gathered)
        except Exception:
            self._local.put_back(gathered)
            raise

    def spill(self) -> None:
        """Moves what this process gathered to Redis now (raises if Redis refuses; nothing is lost)."""
        with self._spilling:
            self._spill()

    def take(self, max_bots: int) -> list[Interaction]:
        self.spill()
        return self._shared.take(max_bots)

    def put_back(self, interactions: Sequence[Interaction]) -> None:
        self._shared.put_back(interactions)

    def pending_count(self) -> int:
        """Entries waiting here and in Redis (tests and diagnostics; not atomic)."""
        return self._local.pending_count() + self._shared.pending_count()


# ------------------------------------------------------------------------------------------------ flusher


def _is_refusal(error: Exception) -> bool:
    """The registry refused the batch itself (INVALID_ARGUMENT): resending it would be refused forever."""
    return isinstance(error, InvalidSetting)


class InteractionFlusher:
    """Takes pending entries and sends them in batches; a failed send puts back what was not sent."""

    def __init__(
        self,
        pending: PendingInteractions,
        sink: InteractionSink,
        batch_size: int = BATCH_SIZE,
        max_bots: int = MAX_BOTS_PER_TAKE,
        max_takes: int = MAX_TAKES_PER_FLUSH,
    ) -> None:
        self._pending = pending
        self._sink = sink
        self._batch_size = batch_size
        self._max_bots = max_bots
        self._max_takes = max_takes

    def flush_once(self) -> int:
        """Sends what is pending now; returns the entries the registry took. Stops at the first failed send."""
        sent = 0
        for _ in range(self._max_takes):
            taken = self._pending.take(self._max_bots)
            if not taken:
                break
            batches = [taken[i : i + self._batch_size] for i in range(0, len(taken), self._batch_size)]
            for index, batch in enumerate(batches):
                try:
                    result = self._sink.record_interactions(batch)
                except Exception as error:
                    if _is_refusal(error):
                        logger.error("interaction batch refused; dropped", extra={"entries": len(batch)})
                        continue
                    unsent = [item for rest in batches[index:] for item in rest]
                    self._pending.put_back(unsent)
                    logger.info(
                        "interaction flush failed; kept for the next one",
                        extra={"entries": len(unsent), "error": type(error).__name__},
                    )
                    return sent
                sent += len(batch)
                if result.skipped_unknown_bot or result.skipped_invalid:
                    logger.info(
                        "interactions skipped by the registry",
                        extra={"unknown_bot": result.skipped_unknown_bot, "invalid": result.skipped_invalid},
                    )
        return sent


class FlusherThread:
    """One daemon thread per process: flushes every `interval_seconds`, and once more when stopped.

    `sleep(seconds)` is injectable for tests; by default it is an Event wait that `stop()` interrupts.
    """

    def __init__(
        self,
        flusher: InteractionFlusher,
        interval_seconds: float,
        sleep: Callable[[float], object] | None = None,
        name: str = "interaction-stats-flusher",
    ) -> None:
        self._flusher = flusher
        self._interval = interval_seconds
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> FlusherThread:
        self._thread.start()
        return self

    def _flush(self) -> None:
        try:
            self._flusher.flush_once()
        except Exception as error:  # e.g. Redis down while taking: the thread must survive it
            logger.warning("interaction flush crashed", extra={"error": type(error).__name__})

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._sleep(self._interval)
            if self._stopping.is_set():
                break
            self._flush()
        self._flush()  # shutdown: what this process recorded last goes out now

    def request_stop(self) -> None:
        """Asks the loop to end after its current sleep (an injected sleep must return on its own)."""
        self._stopping.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Idempotent; returns once the final flush is done (or `timeout` passed)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def start_flusher(
    pending: PendingInteractions,
    sink: InteractionSink,
    interval_seconds: float,
    *,
    batch_size: int = BATCH_SIZE,
    sleep: Callable[[float], object] | None = None,
) -> Callable[[], None]:
    """Starts the process's flusher thread; returns `stop()` (flushes once more, then returns)."""
    thread = FlusherThread(InteractionFlusher(pending, sink, batch_size=batch_size), interval_seconds, sleep).start()
    return thread.stop
