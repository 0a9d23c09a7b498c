"""For test fakes of the Outbox port: its one `send` (src/tgm/domain/ports.py) handed to per-call recording methods.

A fake subclasses `PerCallOutbox` and defines only the methods the code under test should reach — `send_message(bot_id,
chat_id, text, **options)`, `copy_message`, `edit_message_text`, `delete_message`, `answer_callback_query`,
`send_document` — each getting the call's fields, and only the options that differ from their defaults (plus
`link_chat_id` for an inbox delivery). Every effect id passed is kept, in order, in `effect_ids`.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from tgm.domain.outbound import (
    AnswerCallbackQuery,
    CopyMessage,
    DeleteMessage,
    EditMessageText,
    OutboundCall,
    SendDocument,
    SendMessage,
)


def _options(call: OutboundCall, *positional: str) -> dict[str, Any]:
    """The call's fields past `positional` whose values are not their defaults."""
    return {
        f.name: getattr(call, f.name)
        for f in fields(call)
        if f.name not in positional and getattr(call, f.name) != f.default
    }


class PerCallOutbox:
    def send(self, bot_id: str, call: OutboundCall, *, effect_id: str, link_chat_id: int | None = None) -> None:
        ids: list[str] = self.__dict__.setdefault("effect_ids", [])
        ids.append(effect_id)
        link = {} if link_chat_id is None else {"link_chat_id": link_chat_id}
        target: Any = self
        match call:
            case SendMessage():
                target.send_message(bot_id, call.chat_id, call.text, **_options(call, "chat_id", "text"), **link)
            case CopyMessage():
                keys = ("chat_id", "from_chat_id", "message_id")
                target.copy_message(
                    bot_id, call.chat_id, call.from_chat_id, call.message_id, **_options(call, *keys), **link
                )
            case EditMessageText():
                keys = ("chat_id", "message_id", "text")
                target.edit_message_text(bot_id, call.chat_id, call.message_id, call.text, **_options(call, *keys))
            case DeleteMessage():
                target.delete_message(bot_id, call.chat_id, call.message_id, **_options(call, "chat_id", "message_id"))
            case AnswerCallbackQuery():
                target.answer_callback_query(bot_id, call.callback_query_id, call.text)
            case SendDocument():
                target.send_document(
                    bot_id, call.chat_id, call.filename, call.content, mime_type=call.mime_type, caption=call.caption
                )
