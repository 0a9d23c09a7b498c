"""The manager bot's buttons: each a signed action (CallbackTokens), and pagination of long listings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from tgm.domain.bot_roles import BotAction, BotRole, may
from tgm.domain.bots import Bot, BotStatus
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.replies import Replies
from tgm.domain.view import Button, Text, Value

BOTS_PER_PAGE = 8
MAX_PAGES = 1000
_T = TypeVar("_T")


def paginate(items: Sequence[_T], page: int, per_page: int = BOTS_PER_PAGE) -> tuple[Sequence[_T], int, int]:
    """The items on `page` (clamped to the pages there are, at most MAX_PAGES), that page and how many pages."""
    pages = min(MAX_PAGES, -(-len(items) // per_page))
    page = max(0, min(page, pages - 1))
    return items[page * per_page : (page + 1) * per_page], page, pages


class Keyboards(Replies):
    """Buttons carry signed callback data (CallbackTokens): a claim the registry re-checks."""

    def _button(self, ctx: Ctx, key: str, action: CallbackAction, bot_id: str | None, **values: Value) -> Button:
        return Button(Text(key, values), action, self._tokens.sign(action, bot_id, ctx.user_id, ctx.chat_id))

    def _page_button(self, ctx: Ctx, key: str, page: int) -> Button:
        action = CallbackAction.LIST_PAGE
        return Button(Text(key), action, self._tokens.sign(action, None, ctx.user_id, ctx.chat_id, page=page))

    @staticmethod
    def _role(ctx: Ctx, bot: Bot) -> BotRole:
        """The actor's role on a bot the registry listed for them: theirs when they own it, else administered.
        Only chooses which buttons to show; the registry decides what a press may do."""
        return BotRole.OWNER if bot.owner_id == ctx.user_id else BotRole.ADMIN

    def _state_buttons(self, ctx: Ctx, bot: Bot) -> list[Button]:
        toggle = (
            self._button(ctx, "btn_enable", CallbackAction.ENABLE, bot.id)
            if bot.status is BotStatus.DISABLED
            else self._button(ctx, "btn_disable", CallbackAction.DISABLE, bot.id)
        )
        role = self._role(ctx, bot)
        buttons = [toggle]
        if may(role, BotAction.ROTATE_SECRET):
            buttons.append(self._button(ctx, "btn_rotate", CallbackAction.ROTATE, bot.id))
        if may(role, BotAction.DELETE):
            buttons.append(self._button(ctx, "btn_delete", CallbackAction.DELETE_ASK, bot.id))
        return buttons
