"""How the manager bot replies: catalogue texts and their values, handed to the view (which decides their look)."""

from __future__ import annotations

import logging

from tgm.domain.bots import BotStatus
from tgm.domain.errors import TelegramRequestFailed
from tgm.domain.manager_bot.dependencies import Ctx, ManagerDependencies
from tgm.domain.manager_bot.view import Keyboard
from tgm.domain.view import Reply, Text, Value

logger = logging.getLogger(__name__)


class Replies(ManagerDependencies):
    """Says catalogue texts in the chat in context."""

    def _say(self, ctx: Ctx, key: str, keyboard: Keyboard | None = None, **values: Value) -> None:
        self._view.say(ctx.chat, Text(key, values), keyboard)

    def _show(self, ctx: Ctx, reply: Reply, keyboard: Keyboard | None = None) -> None:
        """Says a reply made of several texts (a listing) or already formatted (a broadcast's preview)."""
        self._view.say(ctx.chat, reply, keyboard)

    def _delete(self, ctx: Ctx, message_id: object) -> None:
        """Deletes a message that held (or may have held) a token; when Telegram refuses, the admin is told to
        delete it and revoke the token."""
        deleted = False
        if isinstance(message_id, int):
            try:
                self._view.delete(ctx.chat, message_id, if_refused=Text("mgr_delete_token_yourself"))
                deleted = True
            except TelegramRequestFailed:
                logger.info("could not delete a message", extra={"chat_id": ctx.chat_id})
        if not deleted:
            self._say(ctx, "mgr_delete_token_yourself")

    @staticmethod
    def _status(status: BotStatus) -> Text:
        return Text(f"status_{status.value}")
