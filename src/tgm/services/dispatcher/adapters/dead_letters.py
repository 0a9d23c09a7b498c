"""DeadLetters on Redis: a hash id → JSON record and a sorted set id → last failure time (for listing).

Records hold ids, a redacted reason and the failed job (an update envelope, an API-call job or an
outbound call): never a token.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tgm.domain.ports import DeadLetter
from tgm.domain.redaction import redact
from tgm.observability.metrics import DEAD_LETTERS

KEY_PREFIX = "tgm:dlq"
MAX_LETTERS = 10_000  # the oldest go first beyond this: a failure storm cannot fill Redis

# Add, then drop the oldest letters above the cap (one script: the index and the hash stay in step).
_ADD_CAPPED = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #old, 2 do redis.call('HDEL', KEYS[1], old[i]) end
end
return 0
"""

# Take a letter out (for replay): exactly one caller gets it.
_CLAIM = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return raw
"""


class RedisDeadLetters:
    def __init__(self, client: Any, prefix: str = KEY_PREFIX, max_letters: int = MAX_LETTERS) -> None:
        self._client = client
        self._items = f"{prefix}:items"
        self._index = f"{prefix}:index"
        self._max = max_letters
        self._add = client.register_script(_ADD_CAPPED)
        self._claim = client.register_script(_CLAIM)

    def add(self, kind: str, payload: dict[str, Any], reason: str, attempts: int, first_failure_at: float) -> str:
        letter_id = uuid.uuid4().hex[:16]
        now = time.time()
        record = {
            "id": letter_id,
            "kind": kind,
            "reason": redact(reason),
            "attempts": attempts,
            "first_failure_at": first_failure_at,
            "last_failure_at": now,
            "payload": payload,
        }
        self._store(record)
        DEAD_LETTERS.labels(kind).inc()
        return letter_id

    def _store(self, record: dict[str, Any]) -> None:
        raw = json.dumps(record, ensure_ascii=False)
        self._add(keys=[self._items, self._index], args=[record["id"], raw, record["last_failure_at"], self._max])

    def claim(self, letter_id: str) -> DeadLetter | None:
        """Removes and returns the letter atomically: two operators replaying it at once replay it once."""
        raw = self._claim(keys=[self._items, self._index], args=[letter_id])
        return None if raw is None else self._letter(raw)

    def restore(self, letter: DeadLetter) -> None:
        """Puts a claimed letter back (its replay could not be queued)."""
        self._store(dict(vars(letter)))

    @staticmethod
    def _letter(raw: bytes | str) -> DeadLetter:
        data = json.loads(raw)
        return DeadLetter(
            id=str(data["id"]),
            kind=str(data["kind"]),
            reason=str(data["reason"]),
            attempts=int(data["attempts"]),
            first_failure_at=float(data["first_failure_at"]),
            last_failure_at=float(data["last_failure_at"]),
            payload=dict(data["payload"]),
        )

    def list(self, limit: int = 100) -> list[DeadLetter]:
        ids = self._client.zrange(self._index, 0, max(0, limit - 1))
        if not ids:
            return []
        raws = self._client.hmget(self._items, ids)
        return [self._letter(raw) for raw in raws if raw is not None]

    def get(self, letter_id: str) -> DeadLetter | None:
        raw = self._client.hget(self._items, letter_id)
        return None if raw is None else self._letter(raw)

    def remove(self, letter_id: str) -> bool:
        pipe = self._client.pipeline(transaction=True)
        pipe.hdel(self._items, letter_id)
        pipe.zrem(self._index, letter_id)
        removed, _ = pipe.execute()
        return bool(removed)

    def purge(self) -> int:
        pipe = self._client.pipeline(transaction=True)
        pipe.hlen(self._items)
        pipe.delete(self._items, self._index)
        count, _ = pipe.execute()
        return int(count)
