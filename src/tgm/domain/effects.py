"""Deterministic ids for the side effects of one unit of work, so running it again never repeats them.

DrainChat runs a handler inside `effect_scope(f"{bot_id}:{update_id}")` (RunApiCall: the job id and
attempt); every outbound call the handler queues takes `next_effect_id()`: sha256 of the scope and a
counter, so the n-th reply of a re-run handler has the id of the n-th reply of the first run, and the
outbox's idempotent push (SET NX on the id) drops the copy. Outside a scope there is no id: a side effect
made elsewhere (a broadcast's progress, a tool) opens its own scope at its origin, with `new_effect_key()` when
nothing makes it repeatable; one made by mistake outside any unit of work raises NoEffectScope instead of
quietly losing "send once".
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
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


class NoEffectScope(RuntimeError):
    """A side effect asked for its id outside any effect scope: its origin must open one (a bug, not a retry)."""


def new_effect_key() -> str:
    """A fresh scope key, for a unit of work that is never re-run as such (each run is new)."""
    return uuid.uuid4().hex


def next_effect_id() -> str:
    """The next side effect's id in the current scope; NoEffectScope outside one."""
    scope = _SCOPE.get()
    if scope is None:
        raise NoEffectScope("a side effect outside any effect scope: open effect_scope() where the work starts")
    return effect_id(scope.key, next(scope.counter))
