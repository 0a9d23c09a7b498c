"""DirectSend: a call sent at once from the chat drain whose handler made it, when the send gate opens."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from tgm.domain.errors import TelegramRequestFailed
from tgm.domain.inbox import InboxLinks
from tgm.domain.ports import DeadLetters
from tgm.domain.use_cases.drain_chat import describe_failure
from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox
from tgm.services.dispatcher.adapters.sent_marks import DeferredSentMarks
from tgm.services.dispatcher.outbound.after_send import link_sent, refused_for_good, report_if_blocked
from tgm.services.dispatcher.outbound.calls import QueuedCall
from tgm.services.dispatcher.outbound.ports import BlockedUsers, DirectSendGate, OutboxStore, SendLimiter

logger = logging.getLogger(__name__)


class DirectSendOutcome(StrEnum):
    SENT = "sent"
    REFUSED = "refused"  # Telegram refused it for good: dead-lettered here, as DrainOutbox would
    QUEUE = "queue"  # not sent now: the caller queues it


class DirectSend:
    """Sends a call at once when the gate opens; marks it sent.

    Anything it cannot finish — a lane with calls waiting (order), an earlier run that sent it, no slot, a failure a
    retry may fix — goes through the queue, where DrainOutbox applies retries, 429 pauses and dead letters. What
    stays at-least-once is what always was: a send Telegram performed whose answer or sent-mark was lost.
    """

    def __init__(
        self,
        gate: DirectSendGate,
        store: OutboxStore,
        sender: Callable[[], DirectOutbox],
        dead_letters: DeadLetters,
        limiter: SendLimiter,
        deferred_marks: DeferredSentMarks | None = None,
        blocked_users: BlockedUsers | None = None,
        links: InboxLinks | None = None,
    ) -> None:
        self._links = links
        self._gate = gate
        self._blocked_users = blocked_users
        self._deferred_marks = deferred_marks  # on Redis the update's completion writes the mark (sent_marks.py)
        self._store = store
        self._sender = sender
        self._dead = dead_letters
        self._limiter = limiter

    def __call__(self, queued: QueuedCall) -> DirectSendOutcome:
        bot_id, call_id = queued.bot_id, queued.id
        try:
            sender = self._sender()
            token = sender.token(bot_id)  # before the slot: the grant-to-arrival time stays short
            if not self._gate.open(bot_id, queued.chat_key, queued.call.chat_id, call_id):
                return DirectSendOutcome.QUEUE
            sent = sender.send(bot_id, queued.call, token)
        except Exception as exc:
            if isinstance(exc, TelegramRequestFailed) and exc.retry_after is not None:
                # As DrainOutbox does: hold every chat of the bot; the queued call waits out the pause.
                self._limiter.pause(bot_id, float(exc.retry_after))
                logger.warning(
                    "Telegram said 429; rescheduling",
                    extra={
                        "bot_id": bot_id,
                        "call_id": call_id,
                        "method": queued.method,
                        "retry_after": exc.retry_after,
                    },
                )
                return DirectSendOutcome.QUEUE
            if refused_for_good(exc):
                report_if_blocked(self._blocked_users, queued, exc)
                letter_id = self._dead.add("outbound", queued.to_wire(), describe_failure(exc), 1, time.time())
                logger.error("outbound call failed for good", extra={"bot_id": bot_id, "dead_letter_id": letter_id})
                self._store.mark_sent(call_id)  # settled: a re-run of the update does not try it again
                return DirectSendOutcome.REFUSED
            logger.info(
                "direct send failed; queued instead",
                extra={"bot_id": bot_id, "call_id": call_id, "error": describe_failure(exc)},
            )
            return DirectSendOutcome.QUEUE
        link_sent(self._links, queued, sent)
        if self._deferred_marks is not None:
            self._deferred_marks.defer(call_id)
            return DirectSendOutcome.SENT
        try:
            self._store.mark_sent(call_id)
        except Exception as exc:  # sent all the same; only a re-run of this update could send it again
            logger.warning("sent mark not stored", extra={"bot_id": bot_id, "error": describe_failure(exc)})
        return DirectSendOutcome.SENT
