"""InboxView over the Outbox: the inbox's header in HTML (the sender's name escaped), its other messages plain."""

from __future__ import annotations

from tgm.domain.outbound import SendMessage
from tgm.domain.view import Buttons, Chat, Text
from tgm.services.dispatcher.presentation.chat_view import TelegramChatView
from tgm.services.dispatcher.presentation.markup import reply_markup
from tgm.services.dispatcher.presentation.text import PARSE_MODE, as_html


class TelegramInboxView(TelegramChatView):
    def deliver_header(self, chat: Chat, header: Text, buttons: Buttons, *, link_chat_id: int) -> None:
        text, markup = as_html(header, chat.lang), reply_markup(buttons, chat.lang)
        message = SendMessage(chat.chat_id, text, PARSE_MODE, markup)
        self._outbox.send(chat.bot_id, message, effect_id=chat.effects.next(), link_chat_id=link_chat_id)
