"""Deterministic ids for the side effects of one unit of work, so running it again never repeats them.

DrainChat runs a handler inside `effect_scope(f"{bot_id}:{update_id}")` (RunApiCall: the job id and
attempt); every outbound call the handler queues takes `next_effect_id()`: sha256 of the scope and a
counter, so the n-th reply of a re-run handler has the id of the n-th reply of the first run, and the
outbox's idempotent push (SET NX on the id) drops the copy. Outside a scope there is no id (the caller
makes a random one).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class _Scope:
    key: str
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


_SCOPE: ContextVar[_Scope | None] = ContextVar("tgm_effect_scope", default=None)


@contextmanager
def effect_scope(key: str) -> Iterator[None]:
    token = _SCOPE.set(_Scope(key))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def effect_id(key: str, n: int) -> str:
    return hashlib.sha256(f"{key}:{n}".encode()).hexdigest()[:32]


def next_effect_id() -> str | None:
    scope = _SCOPE.get()
    return None if scope is None else effect_id(scope.key, next(scope.counter))
