"""The contract of the "updates" queue, shared by the gateway (producer) and the dispatcher (consumer).

The gateway builds Dramatiq messages by name so it never imports the dispatcher's package.
"""

from __future__ import annotations

import dramatiq

from libs.domain.updates import UpdateEnvelope

UPDATES_QUEUE = "updates"
HANDLE_UPDATE_ACTOR = "handle_update"


class DramatiqUpdateQueue:
    """UpdateQueue adapter: one Dramatiq message per envelope; the envelope holds ids, never a token."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def enqueue(self, envelope: UpdateEnvelope) -> None:
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=UPDATES_QUEUE,
            actor_name=HANDLE_UPDATE_ACTOR,
            args=(envelope.to_message(),),
            kwargs={},
            options={"request_id": envelope.request_id},
        )
        self._broker.enqueue(message)
