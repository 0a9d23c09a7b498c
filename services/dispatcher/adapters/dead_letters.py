"""DeadLetters on Redis: a hash id → JSON record and a sorted set id → last failure time (for listing).

Records hold ids, a redacted reason and the failed job (an update envelope, an API-call job or an
outbound call): never a token.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from libs.domain.ports import DeadLetter
from libs.domain.redaction import redact

KEY_PREFIX = "tgm:dlq"


class RedisDeadLetters:
    def __init__(self, client: Any, prefix: str = KEY_PREFIX) -> None:
        self._client = client
        self._items = f"{prefix}:items"
        self._index = f"{prefix}:index"

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
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._items, letter_id, json.dumps(record, ensure_ascii=False))
        pipe.zadd(self._index, {letter_id: now})
        pipe.execute()
        return letter_id

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
