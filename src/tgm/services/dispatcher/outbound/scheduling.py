"""The `drain_outbox(bot_id, chat_key)` message that sends a lane's queued calls, and its scheduler."""

from __future__ import annotations

import dramatiq

OUTBOX_QUEUE = "outbox"
DRAIN_OUTBOX_ACTOR = "drain_outbox"


def drain_outbox_message(bot_id: str, chat_key: str) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=OUTBOX_QUEUE, actor_name=DRAIN_OUTBOX_ACTOR, args=(bot_id, chat_key), kwargs={}, options={}
    )


class DramatiqOutboxScheduler:
    """Schedules a `drain_outbox` message for a lane, after `delay_seconds` when given."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def __call__(self, bot_id: str, chat_key: str, delay_seconds: float | None) -> None:
        delay_ms = round((delay_seconds or 0.0) * 1000)
        self._broker.enqueue(drain_outbox_message(bot_id, chat_key), delay=delay_ms if delay_ms > 0 else None)
