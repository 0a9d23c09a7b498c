"""ChatView over the Outbox: a hosted bot's own messages (the CAPTCHA's, the inbox's) as Telegram calls."""

from __future__ import annotations

from tgm.domain.outbound import AnswerCallbackQuery, EditMessageText, SendMessage
from tgm.domain.ports import Outbox
from tgm.domain.view import Buttons, Chat, Reply, Text
from tgm.services.dispatcher.presentation.markup import reply_markup
from tgm.services.dispatcher.presentation.text import as_plain


class TelegramChatView:
    """Plain text (no parse mode: these catalogue texts carry no markup, and values are shown as they are) with
    inline buttons. Each call goes out under the next effect id of the update being answered (the chat's)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def say(self, chat: Chat, reply: Reply, buttons: Buttons | None = None) -> None:
        message = SendMessage(chat.chat_id, as_plain(reply, chat.lang), reply_markup=reply_markup(buttons, chat.lang))
        self._outbox.send(chat.bot_id, message, effect_id=chat.effects.next())

    def edit(self, chat: Chat, message_id: int, reply: Reply, buttons: Buttons | None = None) -> None:
        text, markup = as_plain(reply, chat.lang), reply_markup(buttons, chat.lang)
        self._outbox.send(
            chat.bot_id,
            EditMessageText(chat.chat_id, message_id, text, reply_markup=markup),
            effect_id=chat.effects.next(),
        )

    def answer_button(self, chat: Chat, query_id: str, notice: Text | None = None) -> None:
        answer = AnswerCallbackQuery(query_id, None if notice is None else as_plain(notice, chat.lang))
        self._outbox.send(chat.bot_id, answer, effect_id=chat.effects.next())
