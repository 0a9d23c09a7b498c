"""BroadcastView: a broadcast's body as an HTML message, its progress as the manager bot's HTML edit."""

from __future__ import annotations

from tgm.domain.outbound import OutboundCall, SendMessage
from tgm.domain.ports import Outbox
from tgm.domain.view import Button, Buttons, Chat, Prerendered, Text
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView
from tgm.services.dispatcher.presentation.text import PARSE_MODE


class TelegramBroadcastView:
    def __init__(self, outbox: Outbox) -> None:
        self._manager = TelegramManagerView(outbox)  # the progress message is the manager bot's

    def body(self, subscriber_id: int, body: Prerendered) -> OutboundCall:
        # Stored as HTML by TelegramManagerView.broadcast_body (presentation/broadcast_body.py).
        return SendMessage(subscriber_id, body.text, PARSE_MODE)

    def show_progress(self, chat: Chat, message_id: int, progress: Text, stop: Button | None) -> None:
        self._manager.edit(chat, message_id, progress, None if stop is None else Buttons.of([[stop]]))
