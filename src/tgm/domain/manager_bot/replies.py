"""How the manager bot speaks in Telegram: catalogue text, user values HTML-escaped, no link previews."""

from __future__ import annotations

import html
import logging
from typing import Any

from tgm.domain.bots import BotStatus
from tgm.domain.errors import TelegramRequestFailed
from tgm.domain.manager_bot.dependencies import Ctx, ManagerDependencies
from tgm.domain.messages import render

logger = logging.getLogger(__name__)


PARSE_MODE = "HTML"


def escape(value: object) -> str:
    """A value shown inside an HTML reply: its text, with <, > and & escaped."""
    return html.escape(str(value), quote=False)


class Replies(ManagerDependencies):
    """Sends catalogue texts to the chat in context."""

    def _say(self, ctx: Ctx, key: str, markup: dict[str, Any] | None = None, **values: object) -> None:
        escaped = {name: escape(value) for name, value in values.items()}
        self._out(ctx, render(key, ctx.lang, **escaped), markup)

    def _out(self, ctx: Ctx, text: str, markup: dict[str, Any] | None = None) -> None:
        """Sends catalogue text already rendered (values escaped); HTML, no link previews."""
        self._outbox.send_message(
            ctx.manager_id,
            ctx.chat_id,
            text,
            parse_mode=PARSE_MODE,
            reply_markup=markup,
            disable_web_page_preview=True,
        )

    def _delete(self, ctx: Ctx, message_id: object) -> None:
        """Deletes a message that held (or may have held) a token; when Telegram refuses, the admin is told to
        delete it and revoke the token."""
        deleted = False
        if isinstance(message_id, int):
            try:
                # A queued outbox learns of a refusal only when it sends: it then posts this text itself.
                notice = render("mgr_delete_token_yourself", ctx.lang)
                self._outbox.delete_message(ctx.manager_id, ctx.chat_id, message_id, if_refused_text=notice)
                deleted = True
            except TelegramRequestFailed:
                logger.info("could not delete a message", extra={"chat_id": ctx.chat_id})
        if not deleted:
            self._say(ctx, "mgr_delete_token_yourself")

    def _status(self, ctx: Ctx, status: BotStatus) -> str:
        return render(f"status_{status.value}", ctx.lang)
