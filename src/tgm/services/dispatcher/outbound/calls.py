"""The outbox queue's JSON for the domain's outbound calls (src/tgm/domain/outbound.py).

A queued call is `{"id", "bot_id", "chat_id", "method", "params"}` (QueuedCall.to_wire); the shape is the one calls
already waiting in Redis have, so they drain after an upgrade. An inbox delivery's `link_chat_id` rides in `params`,
as it always did. Adding a call type is one case in `_params` and one in `_call`: mypy checks that each covers
every type of OutboundCall.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, assert_never

from tgm.domain.outbound import (
    AnswerCallbackQuery,
    CopyMessage,
    DeleteMessage,
    EditMessageText,
    OutboundCall,
    SendDocument,
    SendMessage,
)

NO_CHAT = "cbq"  # answerCallbackQuery has no chat: its own lane, limited per bot only

Params = dict[str, Any]

_METHODS: dict[type[OutboundCall], str] = {
    SendMessage: "send_message",
    CopyMessage: "copy_message",
    SendDocument: "send_document",
    EditMessageText: "edit_message_text",
    DeleteMessage: "delete_message",
    AnswerCallbackQuery: "answer_callback_query",
}


def method_of(call: OutboundCall) -> str:
    """The call's name in the queue, metrics and dead letters (the port's old method names)."""
    return _METHODS[type(call)]


def _params(call: OutboundCall) -> Params:
    """The call's parameters as queued (never a token)."""
    match call:
        case SendMessage():
            return {
                "text": call.text,
                "parse_mode": call.parse_mode,
                "reply_markup": call.reply_markup,
                "disable_web_page_preview": call.disable_web_page_preview,
            }
        case CopyMessage():
            return {"from_chat_id": call.from_chat_id, "message_id": call.message_id, "reply_markup": call.reply_markup}
        case SendDocument():
            return {
                "filename": call.filename,
                "content_base64": base64.b64encode(call.content).decode("ascii"),
                "mime_type": call.mime_type,
                "caption": call.caption,
            }
        case EditMessageText():
            return {
                "message_id": call.message_id,
                "text": call.text,
                "parse_mode": call.parse_mode,
                "reply_markup": call.reply_markup,
            }
        case DeleteMessage():
            if call.if_refused_text:
                return {"message_id": call.message_id, "if_refused_text": call.if_refused_text}
            return {"message_id": call.message_id}
        case AnswerCallbackQuery():
            return {"callback_query_id": call.callback_query_id, "text": call.text}
        case _:
            assert_never(call)


def _call(method: object, chat_id: int | None, params: Params) -> OutboundCall:
    if method == "answer_callback_query":
        return AnswerCallbackQuery(str(params["callback_query_id"]), params.get("text"))
    if method not in _METHODS.values():
        raise ValueError(f"unknown outbound method {method!r}")
    if chat_id is None:
        raise ValueError(f"queued {method!r} call without a chat_id")
    match method:
        case "send_message":
            return SendMessage(
                chat_id,
                str(params["text"]),
                parse_mode=params.get("parse_mode"),
                reply_markup=params.get("reply_markup"),
                disable_web_page_preview=bool(params.get("disable_web_page_preview")),
            )
        case "copy_message":
            return CopyMessage(
                chat_id, int(params["from_chat_id"]), int(params["message_id"]), reply_markup=params.get("reply_markup")
            )
        case "send_document":
            return SendDocument(
                chat_id,
                str(params["filename"]),
                base64.b64decode(params["content_base64"]),
                mime_type=str(params["mime_type"]),
                caption=str(params.get("caption") or ""),
            )
        case "edit_message_text":
            return EditMessageText(
                chat_id,
                int(params["message_id"]),
                str(params["text"]),
                parse_mode=params.get("parse_mode"),
                reply_markup=params.get("reply_markup"),
            )
        case _:  # delete_message, the one left
            text = params.get("if_refused_text")
            return DeleteMessage(
                chat_id, int(params["message_id"]), if_refused_text=text if isinstance(text, str) else None
            )


@dataclass(frozen=True)
class QueuedCall:
    """An outbound call as queued: its id (the effect id that makes it send once), its bot, the call, and for an
    inbox delivery the user's chat it is linked to once sent (after_send.link_sent)."""

    id: str
    bot_id: str
    call: OutboundCall
    link_chat_id: int | None = None

    @property
    def method(self) -> str:
        return method_of(self.call)

    @property
    def chat_key(self) -> str:
        """The outbox lane it waits in."""
        chat_id = self.call.chat_id
        return NO_CHAT if chat_id is None else str(chat_id)

    def to_wire(self) -> dict[str, Any]:
        params = _params(self.call)
        if self.link_chat_id is not None:
            params["link_chat_id"] = self.link_chat_id
        return {
            "id": self.id,
            "bot_id": self.bot_id,
            "chat_id": self.call.chat_id,
            "method": self.method,
            "params": params,
        }

    def encode(self) -> bytes:
        """The bytes pushed to the outbox list (compact JSON, UTF-8)."""
        return json.dumps(self.to_wire(), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> QueuedCall:
        """Raises ValueError for an unknown method or a chat call without a chat_id (KeyError/TypeError for
        missing or mistyped parameters)."""
        params, chat_id = dict(data.get("params") or {}), data.get("chat_id")
        call = _call(data.get("method"), None if chat_id is None else int(chat_id), params)
        link = params.get("link_chat_id") if isinstance(call, SendMessage | CopyMessage) else None
        return cls(str(data["id"]), str(data["bot_id"]), call, None if link is None else int(link))


def refusal_notice(queued: QueuedCall) -> QueuedCall | None:
    """The call to make when Telegram refused `queued` for good: a DeleteMessage that carries `if_refused_text` sends
    that text to the chat instead; None for anything else."""
    call = queued.call
    if not isinstance(call, DeleteMessage) or not call.if_refused_text:
        return None
    notice = SendMessage(call.chat_id, call.if_refused_text, parse_mode="HTML", disable_web_page_preview=True)
    return QueuedCall(f"{queued.id}:refused", queued.bot_id, notice)
