"""What a bot says, as values: one frozen dataclass per Bot API call tgm makes as a bot.

The one definition of each call's parameters, used by every layer: the domain hands them to the Outbox port (with
the effect id that makes each happen once), the dispatcher queues them (their queue JSON is in
src/tgm/services/dispatcher/outbound/calls.py) and the TelegramApi port sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SendMessage:
    chat_id: int
    text: str
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    disable_web_page_preview: bool = False


@dataclass(frozen=True)
class CopyMessage:
    """A copy of a message of the bot's chats, sent by the bot (no link to the original, unlike a forward)."""

    chat_id: int
    from_chat_id: int
    message_id: int
    reply_markup: dict[str, Any] | None = None


@dataclass(frozen=True)
class SendDocument:
    """A file for the chat (a CSV export); a queued outbox carries its bytes in the queue, so keep it small."""

    chat_id: int
    filename: str
    content: bytes
    mime_type: str
    caption: str = ""


@dataclass(frozen=True)
class EditMessageText:
    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeleteMessage:
    """`if_refused_text`: sent to the chat (HTML, no link preview) when Telegram refuses the delete for good, which a
    queued outbox learns only later (a synchronous one raises TelegramRequestFailed instead)."""

    chat_id: int
    message_id: int
    if_refused_text: str | None = None


@dataclass(frozen=True)
class AnswerCallbackQuery:
    """Stops a button's spinner, with a short text shown to the presser (Telegram cuts it at 200 characters)."""

    callback_query_id: str
    text: str | None = None

    @property
    def chat_id(self) -> None:
        """It has no chat: the outbox gives it a lane of its own, limited per bot only."""
        return None


OutboundCall = SendMessage | CopyMessage | SendDocument | EditMessageText | DeleteMessage | AnswerCallbackQuery
