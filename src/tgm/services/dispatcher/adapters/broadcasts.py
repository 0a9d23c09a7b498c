"""BroadcastStore on Redis (and in memory, embedded): a broadcast, its progress and its per-recipient marks.

Why Redis and not the registry: a broadcast writes a claim and an outcome per recipient, up to 30 a second per
bot; Redis (AOF on, as for the outbox, the mailboxes and the sent marks) takes that in one round trip each, where
the registry would take two gRPC calls and two SQL transactions per recipient. What must outlive a crash (the
record, the cursor, the marks) is in Redis; the subscribers themselves stay the registry's.

Keys (`tgm:bc` prefix): `tgm:bc:{id}` a hash (the broadcast: text, counters, cursor, state); `tgm:bc-marks:{id}`
a hash user id → outcome (`sending` while claimed); `tgm:bc-bot:{bot_id}` the bot's running broadcast;
`tgm:bc-progress:{id}` the progress edit's rate bound. Drafts lapse with the conversation TTL; a finished
broadcast's keys are kept FINISHED_TTL_SECONDS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, fields, replace
from typing import Any

from tgm.domain.broadcast import Broadcast, BroadcastState, Outcome, StartResult, with_outcome

FINISHED_TTL_SECONDS = 7 * 24 * 3600
_INT_FIELDS = {f.name for f in fields(Broadcast) if f.type in ("int", int)}
_FLOAT_FIELDS = {f.name for f in fields(Broadcast) if f.type in ("float", float)}

# KEYS: record, bot's running key. ARGV: id, message id, total, now, record key prefix. A running key left by a
# broadcast whose record is gone or finished (lost data, an operator's cleanup) does not block the bot for ever.
_START = """
if redis.call('HGET', KEYS[1], 'state') ~= 'draft' then return 'gone' end
local other = redis.call('GET', KEYS[2])
if other and other ~= ARGV[1] and redis.call('HGET', ARGV[5] .. other, 'state') == 'running' then return 'busy' end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'running', 'message_id', ARGV[2], 'total', ARGV[3], 'started_at', ARGV[4])
redis.call('PERSIST', KEYS[1])
return 'started'
"""

# KEYS: record. ARGV: now, finished ttl.
_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'draft' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if state == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  return 1
end
return 0
"""

# KEYS: marks. ARGV: user id. Returns '' when claimed now, else the mark found.
_CLAIM = """
if redis.call('HSETNX', KEYS[1], ARGV[1], 'sending') == 1 then return '' end
return redis.call('HGET', KEYS[1], ARGV[1])
"""

# KEYS: record, marks. ARGV: user id, outcome. Counted once: only a claim still 'sending' is settled.
_SETTLE = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= 'sending' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
if tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'cursor', ARGV[1])
end
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == 'sending' then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

_ADVANCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0') < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'cursor', ARGV[1])
end
return 1
"""

# KEYS: record, marks, bot's running key, progress key. ARGV: id, state, now, ttl.
_FINISH = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'draft' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('DEL', KEYS[4])
return 1
"""


def _to_fields(broadcast: Broadcast) -> dict[str, str]:
    values = asdict(broadcast)
    values["lang"] = broadcast.lang or ""
    values["state"] = broadcast.state.value
    values["cancel_requested"] = "1" if broadcast.cancel_requested else ""
    return {name: str(value) for name, value in values.items()}


def _from_fields(raw: dict[bytes, bytes]) -> Broadcast | None:
    values: dict[str, Any] = {key.decode(): value.decode() for key, value in raw.items()}
    if "id" not in values:
        return None
    for name in _INT_FIELDS:
        values[name] = int(values.get(name) or 0)
    for name in _FLOAT_FIELDS:
        values[name] = float(values.get(name) or 0.0)
    values["lang"] = values.get("lang") or None
    values["state"] = BroadcastState(values["state"])
    values["cancel_requested"] = bool(values.get("cancel_requested"))
    return Broadcast(**values)


class RedisBroadcastStore:
    def __init__(self, client: Any, prefix: str = "tgm:bc") -> None:
        self._client = client
        self._prefix = prefix
        self._start = client.register_script(_START)
        self._cancel = client.register_script(_CANCEL)
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)
        self._advance = client.register_script(_ADVANCE)
        self._finish = client.register_script(_FINISH)

    def _record(self, broadcast_id: str) -> str:
        return f"{self._prefix}:{broadcast_id}"

    def _marks(self, broadcast_id: str) -> str:
        return f"{self._prefix}-marks:{broadcast_id}"

    def _bot(self, bot_id: str) -> str:
        return f"{self._prefix}-bot:{bot_id}"

    def _progress(self, broadcast_id: str) -> str:
        return f"{self._prefix}-progress:{broadcast_id}"

    def create(self, draft: Broadcast, ttl_seconds: int) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._record(draft.id), mapping=_to_fields(draft))
        pipe.expire(self._record(draft.id), max(1, ttl_seconds))
        pipe.execute()

    def get(self, broadcast_id: str) -> Broadcast | None:
        return _from_fields(self._client.hgetall(self._record(broadcast_id)))

    def start(self, broadcast_id: str, message_id: int, total: int, now: float) -> StartResult:
        draft = self.get(broadcast_id)
        if draft is None:
            return StartResult.GONE
        keys = [self._record(broadcast_id), self._bot(draft.bot_id)]
        result = self._start(keys=keys, args=[broadcast_id, message_id, total, repr(now), f"{self._prefix}:"])
        return StartResult(result.decode() if isinstance(result, bytes) else str(result))

    def running_for(self, bot_id: str) -> str | None:
        found = self._client.get(self._bot(bot_id))
        if found is None:
            return None
        broadcast_id = bytes(found).decode()
        running = self._client.hget(self._record(broadcast_id), "state") == BroadcastState.RUNNING.value.encode()
        return broadcast_id if running else None

    def request_cancel(self, broadcast_id: str, now: float) -> bool:
        return bool(self._cancel(keys=[self._record(broadcast_id)], args=[repr(now), FINISHED_TTL_SECONDS]))

    def claim(self, broadcast_id: str, user_id: int) -> Outcome | None:
        found = self._claim(keys=[self._marks(broadcast_id)], args=[user_id])
        mark = bytes(found or b"").decode()
        return Outcome(mark) if mark else None

    def settle(self, broadcast_id: str, user_id: int, outcome: Outcome) -> None:
        keys = [self._record(broadcast_id), self._marks(broadcast_id)]
        self._settle(keys=keys, args=[user_id, outcome.value])

    def release(self, broadcast_id: str, user_id: int) -> None:
        self._release(keys=[self._marks(broadcast_id)], args=[user_id])

    def advance(self, broadcast_id: str, cursor: int) -> None:
        self._advance(keys=[self._record(broadcast_id)], args=[cursor])

    def finish(self, broadcast_id: str, state: BroadcastState, now: float) -> None:
        current = self.get(broadcast_id)
        if current is None:
            return
        keys = [
            self._record(broadcast_id),
            self._marks(broadcast_id),
            self._bot(current.bot_id),
            self._progress(broadcast_id),
        ]
        self._finish(keys=keys, args=[broadcast_id, state.value, repr(now), FINISHED_TTL_SECONDS])

    def progress_due(self, broadcast_id: str, interval_seconds: float) -> bool:
        interval_ms = max(1, round(interval_seconds * 1000))
        return bool(self._client.set(self._progress(broadcast_id), b"1", nx=True, px=interval_ms))


class InMemoryBroadcastStore:
    """The same semantics in one process (embedded); `monotonic` is injectable for the TTLs."""

    def __init__(self, monotonic: Any = time.monotonic) -> None:
        self._monotonic = monotonic
        self._records: dict[str, tuple[Broadcast, float]] = {}  # id -> (broadcast, expires at; inf = never)
        self._marks: dict[str, dict[int, Outcome]] = {}
        self._running: dict[str, str] = {}
        self._progress: dict[str, float] = {}
        self._lock = threading.Lock()

    def _live(self, broadcast_id: str) -> Broadcast | None:
        found = self._records.get(broadcast_id)
        if found is None or found[1] <= self._monotonic():
            return None
        return found[0]

    def _put(self, broadcast: Broadcast, expires_at: float | None = None) -> None:
        self._records[broadcast.id] = (broadcast, self._records[broadcast.id][1] if expires_at is None else expires_at)

    def create(self, draft: Broadcast, ttl_seconds: int) -> None:
        with self._lock:
            now = self._monotonic()
            for lapsed in [key for key, (_, expires_at) in self._records.items() if expires_at <= now]:
                del self._records[lapsed]  # lapsed drafts and old finished broadcasts: nothing grows for ever
            self._records[draft.id] = (draft, now + max(1, ttl_seconds))

    def get(self, broadcast_id: str) -> Broadcast | None:
        with self._lock:
            return self._live(broadcast_id)

    def start(self, broadcast_id: str, message_id: int, total: int, now: float) -> StartResult:
        with self._lock:
            draft = self._live(broadcast_id)
            if draft is None or draft.state is not BroadcastState.DRAFT:
                return StartResult.GONE
            other = self._live(self._running.get(draft.bot_id, ""))
            if other is not None and other.state is BroadcastState.RUNNING:
                return StartResult.BUSY
            self._running[draft.bot_id] = draft.id
            started = replace(draft, state=BroadcastState.RUNNING, message_id=message_id, total=total, started_at=now)
            self._put(started, float("inf"))
            return StartResult.STARTED

    def running_for(self, bot_id: str) -> str | None:
        with self._lock:
            found = self._live(self._running.get(bot_id, ""))
            return found.id if found is not None and found.state is BroadcastState.RUNNING else None

    def request_cancel(self, broadcast_id: str, now: float) -> bool:
        with self._lock:
            current = self._live(broadcast_id)
            if current is None or current.finished:
                return False
            if current.state is BroadcastState.DRAFT:
                self._put(replace(current, state=BroadcastState.CANCELLED, finished_at=now))
            else:
                self._put(replace(current, cancel_requested=True))
            return True

    def claim(self, broadcast_id: str, user_id: int) -> Outcome | None:
        with self._lock:
            marks = self._marks.setdefault(broadcast_id, {})
            if user_id in marks:
                return marks[user_id]
            marks[user_id] = Outcome.SENDING
            return None

    def settle(self, broadcast_id: str, user_id: int, outcome: Outcome) -> None:
        with self._lock:
            marks = self._marks.setdefault(broadcast_id, {})
            current = self._live(broadcast_id)
            if marks.get(user_id) is not Outcome.SENDING or current is None:
                return
            marks[user_id] = outcome
            self._put(replace(with_outcome(current, outcome), cursor=max(current.cursor, user_id)))

    def release(self, broadcast_id: str, user_id: int) -> None:
        with self._lock:
            marks = self._marks.get(broadcast_id, {})
            if marks.get(user_id) is Outcome.SENDING:
                del marks[user_id]

    def advance(self, broadcast_id: str, cursor: int) -> None:
        with self._lock:
            current = self._live(broadcast_id)
            if current is not None and cursor > current.cursor:
                self._put(replace(current, cursor=cursor))

    def finish(self, broadcast_id: str, state: BroadcastState, now: float) -> None:
        with self._lock:
            current = self._live(broadcast_id)
            if current is None or current.finished:
                return
            self._put(replace(current, state=state, finished_at=now), self._monotonic() + FINISHED_TTL_SECONDS)
            if self._running.get(current.bot_id) == broadcast_id:
                del self._running[current.bot_id]
            self._progress.pop(broadcast_id, None)
            self._marks.pop(broadcast_id, None)  # a finished broadcast sends nothing more: its marks are spent

    def progress_due(self, broadcast_id: str, interval_seconds: float) -> bool:
        with self._lock:
            now = self._monotonic()
            if self._progress.get(broadcast_id, 0.0) > now:
                return False
            self._progress[broadcast_id] = now + interval_seconds
            return True
