"""ManagerView over the Outbox: the manager bot's replies as Telegram messages."""

from __future__ import annotations

from tgm.domain.effects import EffectIds
from tgm.domain.manager_bot.view import Keyboard
from tgm.domain.outbound import AnswerCallbackQuery, DeleteMessage, EditMessageText, SendDocument, SendMessage
from tgm.domain.ports import Outbox
from tgm.domain.view import Buttons, Chat, Prerendered, Reply, Text
from tgm.services.dispatcher.presentation.broadcast_body import html_from_entities
from tgm.services.dispatcher.presentation.markup import reply_markup
from tgm.services.dispatcher.presentation.text import PARSE_MODE, as_html, as_plain


class TelegramManagerView:
    """HTML messages with values escaped and no link previews; buttons as Telegram keyboards. Each call goes out
    under the next effect id of the update being answered (the chat's `effects`)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def say(self, chat: Chat, reply: Reply, keyboard: Keyboard | None = None) -> None:
        text, markup = as_html(reply, chat.lang), reply_markup(keyboard, chat.lang)
        message = SendMessage(chat.chat_id, text, PARSE_MODE, markup, disable_web_page_preview=True)
        self._outbox.send(chat.bot_id, message, effect_id=chat.effects.next())

    def edit(self, chat: Chat, message_id: int, reply: Reply, buttons: Buttons | None = None) -> None:
        text, markup = as_html(reply, chat.lang), reply_markup(buttons, chat.lang)
        edit = EditMessageText(chat.chat_id, message_id, text, PARSE_MODE, markup)
        self._outbox.send(chat.bot_id, edit, effect_id=chat.effects.next())

    def send_file(self, chat: Chat, filename: str, content: bytes, mime_type: str, caption: Text) -> None:
        document = SendDocument(chat.chat_id, filename, content, mime_type, as_plain(caption, chat.lang))
        self._outbox.send(chat.bot_id, document, effect_id=chat.effects.next())

    def delete(self, chat: Chat, message_id: int, if_refused: Text) -> None:
        # A queued outbox learns of a refusal only when it sends: it then posts this text itself (HTML, as `say`).
        delete = DeleteMessage(chat.chat_id, message_id, if_refused_text=as_html(if_refused, chat.lang))
        self._outbox.send(chat.bot_id, delete, effect_id=chat.effects.next())

    def broadcast_body(self, text: str, entities: object) -> Prerendered:
        return Prerendered(html_from_entities(text, entities))

    def answer_button(
        self, manager_id: str, query_id: str, lang: str | None, notice: Text | None = None, *, effects: EffectIds
    ) -> None:
        answer = AnswerCallbackQuery(query_id, None if notice is None else as_plain(notice, lang))
        self._outbox.send(manager_id, answer, effect_id=effects.next())
