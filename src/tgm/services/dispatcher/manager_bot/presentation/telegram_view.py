"""ManagerView over the Outbox: the manager bot's replies as Telegram messages."""

from __future__ import annotations

from tgm.domain.manager_bot.view import Buttons, Chat, Keyboard, Reply, Text
from tgm.domain.ports import Outbox
from tgm.services.dispatcher.manager_bot.presentation.markup import reply_markup
from tgm.services.dispatcher.manager_bot.presentation.text import PARSE_MODE, as_html, as_plain


class TelegramManagerView:
    """HTML messages with values escaped and no link previews; buttons as Telegram keyboards."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def say(self, chat: Chat, reply: Reply, keyboard: Keyboard | None = None) -> None:
        self._outbox.send_message(
            chat.manager_id,
            chat.chat_id,
            as_html(reply, chat.lang),
            parse_mode=PARSE_MODE,
            reply_markup=reply_markup(keyboard, chat.lang),
            disable_web_page_preview=True,
        )

    def edit(self, chat: Chat, message_id: int, reply: Reply, buttons: Buttons | None = None) -> None:
        self._outbox.edit_message_text(
            chat.manager_id,
            chat.chat_id,
            message_id,
            as_html(reply, chat.lang),
            parse_mode=PARSE_MODE,
            reply_markup=reply_markup(buttons, chat.lang),
        )

    def send_file(self, chat: Chat, filename: str, content: bytes, mime_type: str, caption: Text) -> None:
        self._outbox.send_document(
            chat.manager_id, chat.chat_id, filename, content, mime_type=mime_type, caption=as_plain(caption, chat.lang)
        )

    def delete(self, chat: Chat, message_id: int, if_refused: Text) -> None:
        # A queued outbox learns of a refusal only when it sends: it then posts this text itself (HTML, as `say`).
        notice = as_html(if_refused, chat.lang)
        self._outbox.delete_message(chat.manager_id, chat.chat_id, message_id, if_refused_text=notice)

    def answer_button(self, manager_id: str, query_id: str, lang: str | None, notice: Text | None = None) -> None:
        self._outbox.answer_callback_query(manager_id, query_id, None if notice is None else as_plain(notice, lang))
