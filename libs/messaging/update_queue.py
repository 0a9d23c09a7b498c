"""The contract of the "updates" queue, shared by the gateway (producer) and the dispatcher (consumer).

The gateway builds Dramatiq messages by name so it never imports the dispatcher's package.

Per-chat order: `MailboxUpdateQueue` appends the envelope to its chat's mailbox (libs/messaging/mailbox.py)
and then enqueues `drain_chat(bot_id, chat_key)`, ids only; a worker drains the chat in order
(libs/domain/use_cases/drain_chat.py). `handle_update(envelope)` is kept for messages queued by an
older gateway: the dispatcher moves them into the mailbox.
"""

from __future__ import annotations

import logging

import dramatiq

from libs.domain.inbound import chat_key_of
from libs.domain.ports import ChatMailbox
from libs.domain.updates import UpdateEnvelope

logger = logging.getLogger("libs.messaging.update_queue")

UPDATES_QUEUE = "updates"
HANDLE_UPDATE_ACTOR = "handle_update"
DRAIN_CHAT_ACTOR = "drain_chat"


def drain_chat_message(bot_id: str, chat_key: str, request_id: str | None = None) -> dramatiq.Message[None]:
    options = {"request_id": request_id} if request_id else {}
    return dramatiq.Message(
        queue_name=UPDATES_QUEUE, actor_name=DRAIN_CHAT_ACTOR, args=(bot_id, chat_key), kwargs={}, options=options
    )


class MailboxUpdateQueue:
    """UpdateQueue adapter: RPUSH to the chat's mailbox, then a `drain_chat` message carrying ids only.

    If the push succeeds and the enqueue fails, the gateway answers 503 and Telegram redelivers: the
    update may then sit twice in the mailbox, and dedup on (bot, update_id) makes the second a no-op.
    """

    def __init__(self, broker: dramatiq.Broker, mailbox: ChatMailbox) -> None:
        self._broker = broker
        self._mailbox = mailbox

    def enqueue(self, envelope: UpdateEnvelope) -> None:
        chat_key = chat_key_of(envelope)
        if not self._mailbox.push(chat_key, envelope):
            # The chat's mailbox is full (a flood): drop the update; the gateway still answers 200, so
            # Telegram does not redeliver it into the same flood. A drain is already due for this chat.
            logger.warning(
                "chat mailbox full; update dropped",
                extra={"bot_id": envelope.bot_id, "update_id": envelope.update_id, "request_id": envelope.request_id},
            )
            return
        self._broker.enqueue(drain_chat_message(envelope.bot_id, chat_key, envelope.request_id))
