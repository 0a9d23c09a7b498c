"""Typed outbound calls: one frozen dataclass per Bot API method tgm sends, and the queue's JSON for them.

A queued call is `{"id", "bot_id", "chat_id", "method", "params"}` (QueuedCall.to_wire); the shape is the one calls
already waiting in Redis have, so they drain after an upgrade. Each call type knows its DirectOutbox method
(`send`): adding a method is one class here and one entry in CALL_TYPES, no switch to extend elsewhere.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from tgm.domain.bots import BotToken
from tgm.domain.ports import SentMessage

if TYPE_CHECKING:
    from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox

NO_CHAT = "cbq"  # answerCallbackQuery has no chat: its own lane, limited per bot only

Params = dict[str, Any]


class OutboundCall(Protocol):
    """One Bot API call without its bot: what to send, to which chat (None: answerCallbackQuery)."""

    method: ClassVar[str]

    @property
    def chat_id(self) -> int | None: ...

    def params(self) -> Params:
        """The call's parameters as queued (never a token)."""
        ...

    def send(self, sender: DirectOutbox, bot_id: str, token: BotToken | None) -> SentMessage | None:
        """Calls Telegram through `sender`; the message it sent, for a send or a copy."""
        ...


def _with_link(params: Params, link_chat_id: int | None) -> Params:
    """An inbox delivery carries the user's chat it is linked to once sent (see after_send.link_sent)."""
    if link_chat_id is not None:
        params["link_chat_id"] = link_chat_id
    return params


@dataclass(frozen=True)
class SendMessage:
    method: ClassVar[str] = "send_message"
    chat_id: int
    text: str
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    disable_web_page_preview: bool = False
    link_chat_id: int | None = None

    def params(self) -> Params:
        params: Params = {
            "text": self.text,
            "parse_mode": self.parse_mode,
            "reply_markup": self.reply_markup,
            "disable_web_page_preview": self.disable_web_page_preview,
        }
        return _with_link(params, self.link_chat_id)

    @classmethod
    def from_params(cls, chat_id: int, params: Params) -> SendMessage:
        return cls(
            chat_id,
            str(params["text"]),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            disable_web_page_preview=bool(params.get("disable_web_page_preview")),
            link_chat_id=params.get("link_chat_id"),
        )

    def send(self, sender: DirectOutbox, bot_id: str, token: BotToken | None) -> SentMessage | None:
        return sender.send_message(
            bot_id,
            self.chat_id,
            self.text,
            parse_mode=self.parse_mode,
            reply_markup=self.reply_markup,
            disable_web_page_preview=self.disable_web_page_preview,
            token=token,
        )


@dataclass(frozen=True)
class CopyMessage:
    method: ClassVar[str] = "copy_message"
    chat_id: int
    from_chat_id: int
    message_id: int
    reply_markup: dict[str, Any] | None = None
    link_chat_id: int | None = None

    def params(self) -> Params:
        params: Params = {
            "from_chat_id": self.from_chat_id,
            "message_id": self.message_id,
            "reply_markup": self.reply_markup,
        }
        return _with_link(params, self.link_chat_id)

    @classmethod
    def from_params(cls, chat_id: int, params: Params) -> CopyMessage:
        return cls(
            chat_id,
            int(params["from_chat_id"]),
            int(params["message_id"]),
            reply_markup=params.get("reply_markup"),
            link_chat_id=params.get("link_chat_id"),
        )

    def send(self, sender: DirectOutbox, bot_id: str, token: BotToken | None) -> SentMessage | None:
        return sender.copy_message(
            bot_id, self.chat_id, self.from_chat_id, self.message_id, reply_markup=self.reply_markup, token=token
        )


@dataclass(frozen=True)
class SendDocument:
    method: ClassVar[str] = "send_document"
    chat_id: int
    filename: str
    content: bytes
    mime_type: str
    caption: str = ""

    def params(self) -> Params:
        return {
            "filename": self.filename,
            "content_base64": base64.b64encode(self.content).decode("ascii"),
            "mime_type": self.mime_type,
            "caption": self.caption,
        }

    @classmethod
    def from_params(cls, chat_id: int, params: Params) -> SendDocument:
        return cls(
            chat_id,
            str(params["filename"]),
            base64.b64decode(params["content_base64"]),
            mime_type=str(params["mime_type"]),
            caption=str(params.get("caption") or ""),
        )

    def send(self, sender: DirectOutbox, bot_id: str, token: BotToken | None) -> SentMessage | None:
        sender.send_document(
            bot_id,
            self.chat_id,
            self.filename,
            self.content,
            mime_type=self.mime_type,
            caption=self.caption,
            token=token,
        )
        return None


@dataclass(frozen=True)
class EditMessageText:
    method: ClassVar[str] = "edit_message_text"
    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None

    def params(self) -> Params:
        return {
            "message_id": self.message_id,
            "text": self.text,
            "parse_mode": self.parse_mode,
            "reply_markup": self.reply_markup,
        }

    @classmethod
    def from_params(cls, chat_id: int, params: Params) -> EditMessageText:
        return cls(
            chat_id,
            int(params["message_id"]),
            str(params["text"]),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
        )

    def send(self, sender: DirectOutbox, bot_id: str, token: BotToken | None) -> SentMessage | None:
        sender.edit_message_text(
            bot_id,
            self.chat_id,
            self.message_id,
            self.text,
            parse_mode=self.parse_mode,
            reply_markup=self.reply_markup,
            token=token,
        )
        return None


@dataclass(frozen=True)
class DeleteMessage:
    """`if_refused_text`: sent to the chat instead when Telegram refuses the delete for good (refusal_notice)."""

    method: ClassVar[str] = "delete_message"
    chat_id: int
    message_id: int
    if_refused_text: str | None = None

    def params(self) -> Params:
        params: Params = {"message_id": self.message_id}
        if self.if_refused_text:
            params["if_refused_text"] = self.if_refused_text
        return params

    @classmethod
    def from_params(cls, chat_id: int, params: Params) -> DeleteMessage:
        text = params.get("if_refused_text")
        return cls(chat_id, int(params["message_id"]), if_refused_text=text if isinstance(text, str) else None)

    def send(self, sender: DirectOutbox, bot_id: str, token: BotToken | None) -> SentMessage | None:
        sender.delete_message(bot_id, self.chat_id, self.message_id, token=token)
        return None


@dataclass(frozen=True)
class AnswerCallbackQuery:
    method: ClassVar[str] = "answer_callback_query"
    callback_query_id: str
    text: str | None = None

    @property
    def chat_id(self) -> None:
        return None

    def params(self) -> Params:
        return {"callback_query_id": self.callback_query_id, "text": self.text}

    @classmethod
    def from_params(cls, chat_id: int | None, params: Params) -> AnswerCallbackQuery:
        return cls(str(params["callback_query_id"]), params.get("text"))

    def send(self, sender: DirectOutbox, bot_id: str, token: BotToken | None) -> SentMessage | None:
        sender.answer_callback_query(bot_id, self.callback_query_id, self.text, token=token)
        return None


_ChatCall = SendMessage | CopyMessage | SendDocument | EditMessageText | DeleteMessage
_CHAT_CALLS: dict[str, type[_ChatCall]] = {
    c.method: c for c in (SendMessage, CopyMessage, SendDocument, EditMessageText, DeleteMessage)
}


@dataclass(frozen=True)
class QueuedCall:
    """An outbound call as queued: its id (the effect id that makes it send once), its bot, the call."""

    id: str
    bot_id: str
    call: OutboundCall

    @property
    def chat_key(self) -> str:
        """The outbox lane it waits in."""
        chat_id = self.call.chat_id
        return NO_CHAT if chat_id is None else str(chat_id)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bot_id": self.bot_id,
            "chat_id": self.call.chat_id,
            "method": self.call.method,
            "params": self.call.params(),
        }

    def encode(self) -> bytes:
        """The bytes pushed to the outbox list (compact JSON, UTF-8)."""
        return json.dumps(self.to_wire(), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> QueuedCall:
        """Raises ValueError for an unknown method or a chat call without a chat_id (KeyError/TypeError for
        missing or mistyped parameters)."""
        method, params, chat_id = data.get("method"), dict(data.get("params") or {}), data.get("chat_id")
        if method == AnswerCallbackQuery.method:
            call: OutboundCall = AnswerCallbackQuery.from_params(None, params)
        elif method in _CHAT_CALLS:
            if chat_id is None:
                raise ValueError(f"queued {method!r} call without a chat_id")
            call = _CHAT_CALLS[method].from_params(int(chat_id), params)
        else:
            raise ValueError(f"unknown outbound method {method!r}")
        return cls(str(data["id"]), str(data["bot_id"]), call)


def refusal_notice(queued: QueuedCall) -> QueuedCall | None:
    """The call to make when Telegram refused `queued` for good: a DeleteMessage that carries `if_refused_text` sends
    that text to the chat instead; None for anything else."""
    call = queued.call
    if not isinstance(call, DeleteMessage) or not call.if_refused_text:
        return None
    notice = SendMessage(call.chat_id, call.if_refused_text, parse_mode="HTML", disable_web_page_preview=True)
    return QueuedCall(f"{queued.id}:refused", queued.bot_id, notice)
