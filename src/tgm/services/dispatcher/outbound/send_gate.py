"""The direct-send gate (the DirectSendGate port): may a call go to Telegram now, from the chat drain that made it?"""

from __future__ import annotations

from typing import Any

from tgm.services.dispatcher.adapters.sent_marks import OUTBOX_PREFIX, sent_mark_key
from tgm.services.dispatcher.outbound.ports import DirectSendGate, OutboxStore, SendLimiter

__all__ = ["ComposedDirectSendGate", "DirectSendGate", "RedisDirectSendGate"]


class ComposedDirectSendGate:
    """The gate from an OutboxStore and a SendLimiter (in memory; one call each)."""

    def __init__(self, store: OutboxStore, limiter: SendLimiter) -> None:
        self._store = store
        self._limiter = limiter

    def open(self, bot_id: str, chat_key: str, chat_id: int | None, call_id: str) -> bool:
        if self._store.size(bot_id, chat_key) or self._store.is_sent(call_id):
            return False
        return self._limiter.acquire(bot_id, chat_id) <= 0


class RedisDirectSendGate:
    """The gate in one round trip: the lane and sent-mark checks in front of the send limiter's own script."""

    def __init__(self, client: Any, limiter: Any, prefix: str = OUTBOX_PREFIX) -> None:
        from tgm.services.dispatcher.adapters.redis_abuse import SEND_SLOT

        # KEYS[1..3] and ARGV are the limiter's; KEYS[4] the lane, KEYS[5] the call's sent mark.
        self._script = client.register_script(
            "if redis.call('LLEN', KEYS[4]) > 0 or redis.call('EXISTS', KEYS[5]) == 1 then return -1 end\n" + SEND_SLOT
        )
        self._limiter = limiter
        self._prefix = prefix

    def open(self, bot_id: str, chat_key: str, chat_id: int | None, call_id: str) -> bool:
        keys, args = self._limiter.slot_request(bot_id, chat_id)
        keys = [*keys, f"{self._prefix}:{bot_id}:{chat_key}", sent_mark_key(call_id, self._prefix)]
        return int(self._script(keys=keys, args=args)) == 0
