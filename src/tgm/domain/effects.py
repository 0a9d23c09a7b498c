"""Idempotency keys for the side effects of one unit of work, so running it again never repeats them.

A unit of work names its `EffectIds` after itself — an update `EffectIds.for_update(envelope)` (its bot and
update_id), an API-call job its id and attempt — and passes `effects.next()` explicitly with each call it makes
(`Outbox.send(..., effect_id=...)`): sha256 of the name and a counter, so the n-th call of a re-run handler has the id
of the n-th call of the first run, and the outbox's idempotent push (SET NX on the id) drops the copy. Work that is
never re-run as such (a broadcast's progress) uses `EffectIds.unrepeatable()`.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tgm.domain.updates import UpdateEnvelope


def effect_id(key: str, n: int) -> str:
    return hashlib.sha256(f"{key}:{n}".encode()).hexdigest()[:32]


class EffectIds:
    """The ids of one unit of work's side effects, in the order it makes them. One run, one thread: not shared."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._counter = itertools.count(1)

    @classmethod
    def for_update(cls, envelope: UpdateEnvelope, part: str = "") -> EffectIds:
        """The update's (bot, update_id): the same for every delivery of it. `part` sets apart effects made
        outside its handler (the inbound guard's refusal notice)."""
        key = f"{envelope.bot_id}:{envelope.update_id}"
        return cls(f"{key}:{part}" if part else key)

    @classmethod
    def unrepeatable(cls) -> EffectIds:
        """For work that each run does anew (nothing to deduplicate against)."""
        return cls(uuid.uuid4().hex)

    def next(self) -> str:
        return effect_id(self._key, next(self._counter))
