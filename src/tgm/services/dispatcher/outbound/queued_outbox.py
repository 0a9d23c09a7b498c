"""QueuedOutbox, the Outbox port on the dispatcher: every call is queued per (bot, chat) and sent by a drain.

Each call is queued under the effect id its caller passed (src/tgm/domain/effects.py): deterministic for a handler's
run, so a re-run queues the same ids and the idempotent push drops the copies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import dramatiq

from tgm.domain.outbound import OutboundCall
from tgm.services.dispatcher.outbound.calls import QueuedCall, refusal_notice
from tgm.services.dispatcher.outbound.direct_send import DirectSend, DirectSendOutcome
from tgm.services.dispatcher.outbound.ports import OutboxStore
from tgm.services.dispatcher.outbound.scheduling import drain_outbox_message

logger = logging.getLogger(__name__)

# Set while a chat drain runs a handler: the lanes it queued calls on, which that drain sends right after the
# handler returns (see FlushingHandler) instead of leaving them to a `drain_outbox` message.
_INLINE_LANES: ContextVar[set[tuple[str, str]] | None] = ContextVar("tgm_inline_outbox_lanes", default=None)


@contextmanager
def collecting_lanes() -> Iterator[set[tuple[str, str]]]:
    lanes: set[tuple[str, str]] = set()
    token = _INLINE_LANES.set(lanes)
    try:
        yield lanes
    finally:
        _INLINE_LANES.reset(token)


class QueuedOutbox:
    """The Outbox port: queue the call, let a drain send it within Telegram's limits.

    Inside a chat drain's handler a call first tries `DirectSend` (sent now, nothing queued); if it cannot go at
    once it is queued and that drain sends it right after the handler returns (FlushingHandler). Elsewhere one
    `drain_outbox` message per burst on a lane, not per call (the lane's "drain due" flag).
    """

    def __init__(self, store: OutboxStore, broker: dramatiq.Broker, direct: DirectSend | None = None) -> None:
        self._store = store
        self._broker = broker
        self._direct = direct

    def pending(self, bot_id: str, chat_id: int) -> int:
        """Messages waiting in the chat's outbox lane (the inbox's backlog check, src/tgm/domain/inbox.py)."""
        return self._store.size(bot_id, str(chat_id))

    def send(self, bot_id: str, call: OutboundCall, *, effect_id: str, link_chat_id: int | None = None) -> None:
        self._put(QueuedCall(effect_id, bot_id, call, link_chat_id))

    def _put(self, queued: QueuedCall) -> None:
        bot_id, chat_key = queued.bot_id, queued.chat_key
        inline = _INLINE_LANES.get()
        if inline is not None and self._direct is not None:
            outcome = self._direct(queued)
            if outcome == DirectSendOutcome.SENT:
                return
            if outcome == DirectSendOutcome.REFUSED:
                notice = refusal_notice(queued)
                if notice is not None:
                    self._put(notice)
                return
        pushed, schedule = self._store.push_and_mark(bot_id, chat_key, queued.encode(), queued.id)
        if not pushed:
            logger.info(
                "outbound call already queued by an earlier run", extra={"bot_id": bot_id, "call_id": queued.id}
            )
        if inline is not None:
            # Even for a duplicate: the earlier run may have died before sending it.
            inline.add((bot_id, chat_key))
        elif schedule:
            self._broker.enqueue(drain_outbox_message(bot_id, chat_key))
