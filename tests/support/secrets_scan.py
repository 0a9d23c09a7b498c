"""Looks for a secret everywhere tgm keeps data: database rows, Redis keys and values, log files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import cast

import redis
import sqlalchemy as sa


def _contains(value: object, needles: Iterable[bytes]) -> bool:
    if value is None:
        return False
    if isinstance(value, memoryview):
        value = value.tobytes()
    data = value if isinstance(value, bytes) else str(value).encode()
    return any(needle in data for needle in needles)


def database_hits(db_url: str, secrets: Iterable[str]) -> list[str]:
    """Every (table, column) whose value holds one of `secrets`; also returns the row count seen."""
    needles = [s.encode() for s in secrets]
    engine = sa.create_engine(db_url)
    hits = []
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(sa.select(table)).mappings():
                    hits += [f"{table.name}.{column}" for column, value in row.items() if _contains(value, needles)]
    finally:
        engine.dispose()
    return hits


def database_row_count(db_url: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return sum(
                connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables
            )
    finally:
        engine.dispose()


def _redis_values(client: redis.Redis, key: bytes) -> Iterator[object]:
    """Every field and value stored under `key` (bytes or str per the client's types; `_contains` reads either)."""
    # redis-py types its sync replies as "Awaitable[T] | T" (one class serves both clients): say what sync returns.
    kind = client.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "string":
        yield client.get(key) or b""
    elif kind == "list":
        yield from cast(list[bytes], client.lrange(key, 0, -1))
    elif kind == "hash":
        for field, value in cast(dict[bytes, bytes], client.hgetall(key)).items():  # type: ignore[arg-type]
            yield field
            yield value
    elif kind == "set":
        yield from cast(set[bytes], client.smembers(key))
    elif kind == "zset":
        yield from cast(list[bytes], client.zrange(key, 0, -1))
    elif kind == "stream":
        for _id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key)) or []:
            for field, value in (fields or {}).items():
                yield field
                yield value


def redis_hits(redis_url: str, secrets: Iterable[str]) -> tuple[list[str], int]:
    """Keys whose name or content holds a secret, and how many keys were looked at."""
    needles = [s.encode() for s in secrets]
    client = redis.Redis.from_url(redis_url)
    hits, seen = [], 0
    try:
        for key in client.scan_iter(count=500):
            seen += 1
            if _contains(key, needles) or any(_contains(v, needles) for v in _redis_values(client, key)):
                hits.append(key.decode(errors="replace"))
    finally:
        client.close()
    return hits, seen


def text_hits(text: str, secrets: Iterable[str]) -> list[str]:
    return [line[:200] for line in text.splitlines() if any(s in line for s in secrets)]
