"""What follows Telegram's answer to an outbound call, the same whether DirectSend or DrainOutbox sent it."""

from __future__ import annotations

import logging

from tgm.domain.errors import TelegramRequestFailed, blocked_by_user
from tgm.domain.inbox import InboxLinks
from tgm.domain.ports import SentMessage
from tgm.domain.use_cases.drain_chat import describe_failure
from tgm.services.dispatcher.outbound.calls import QueuedCall
from tgm.services.dispatcher.outbound.ports import BlockedUsers

logger = logging.getLogger(__name__)


def refused_for_good(exc: Exception) -> bool:
    """Telegram's 4xx other than 429 (bad request, blocked, not found): the same call would be refused again."""
    return isinstance(exc, TelegramRequestFailed) and exc.retry_after is None and 400 <= exc.error_code < 500


def report_if_blocked(reporter: BlockedUsers | None, queued: QueuedCall, exc: Exception) -> None:
    """Telegram's 403 "Forbidden: bot was blocked by the user" on a call to a private chat (its id is the user's):
    the user blocked the bot."""
    chat_id = queued.call.chat_id
    if reporter is not None and blocked_by_user(exc) and chat_id is not None and chat_id > 0:
        reporter.blocked(queued.bot_id, chat_id)


def link_sent(links: InboxLinks | None, queued: QueuedCall, sent: SentMessage | None) -> None:
    """An inbox delivery (a send or copy with `link_chat_id`): the message Telegram just numbered is linked to the
    user's chat, so an admin's reply to it finds that user (src/tgm/domain/inbox.py). Best effort: the message is sent
    either way, and a lost link only means a reply to it is explained instead of delivered."""
    if links is None or sent is None or queued.link_chat_id is None:
        return
    try:
        links.link(queued.bot_id, sent.chat_id, sent.message_id, queued.link_chat_id)
    except Exception as exc:
        logger.warning("inbox link not stored", extra={"bot_id": queued.bot_id, "error": describe_failure(exc)})
