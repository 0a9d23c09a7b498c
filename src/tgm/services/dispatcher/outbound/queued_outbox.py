"""QueuedOutbox, the Outbox port on the dispatcher: every call is queued per (bot, chat) and sent by a drain.

Each port method builds its typed call (calls.py) and gives it the current effect id (src/tgm/domain/effects.py):
deterministic inside a handler run, so a re-run queues the same ids and the idempotent push drops the copies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import dramatiq

from tgm.domain.effects import next_effect_id
from tgm.services.dispatcher.outbound.calls import (
    AnswerCallbackQuery,
    CopyMessage,
    DeleteMessage,
    EditMessageText,
    OutboundCall,
    QueuedCall,
    SendDocument,
    SendMessage,
    refusal_notice,
)
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

    def queue(self, bot_id: str, call: OutboundCall) -> None:
        """Queues `call` under the current effect id (src/tgm/domain/effects.py); NoEffectScope outside a scope."""
        self._put(QueuedCall(next_effect_id(), bot_id, call))

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

    def send_message(
        self,
        bot_id: str,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        disable_web_page_preview: bool = False,
        link_chat_id: int | None = None,
    ) -> None:
        """`link_chat_id`: an inbox delivery, linked to that user's chat once sent (after_send.link_sent)."""
        self.queue(bot_id, SendMessage(chat_id, text, parse_mode, reply_markup, disable_web_page_preview, link_chat_id))

    def copy_message(
        self,
        bot_id: str,
        chat_id: int,
        from_chat_id: int,
        message_id: int,
        *,
        reply_markup: dict[str, Any] | None = None,
        link_chat_id: int | None = None,
    ) -> None:
        self.queue(bot_id, CopyMessage(chat_id, from_chat_id, message_id, reply_markup, link_chat_id))

    def send_document(
        self, bot_id: str, chat_id: int, filename: str, content: bytes, *, mime_type: str, caption: str = ""
    ) -> None:
        self.queue(bot_id, SendDocument(chat_id, filename, content, mime_type, caption))

    def edit_message_text(
        self,
        bot_id: str,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> None:
        self.queue(bot_id, EditMessageText(chat_id, message_id, text, parse_mode, reply_markup))

    def delete_message(self, bot_id: str, chat_id: int, message_id: int, *, if_refused_text: str | None = None) -> None:
        self.queue(bot_id, DeleteMessage(chat_id, message_id, if_refused_text))

    def answer_callback_query(self, bot_id: str, callback_query_id: str, text: str | None = None) -> None:
        self.queue(bot_id, AnswerCallbackQuery(callback_query_id, text))
