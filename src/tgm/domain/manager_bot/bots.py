"""/mybots and a bot's details: the paginated listing, details, stats and the confirmations before rotate/delete."""

from __future__ import annotations

from tgm.domain.bot_roles import BotAction, BotRole, may
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.errors import DomainError
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.keyboards import paginate
from tgm.domain.manager_bot.registry_calls import RegistryCalls
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Button, Buttons, Joined, Text, Value


class BotsCommands(RegistryCalls):
    """The listing and the per-bot screens."""

    def _list(self, ctx: Ctx, page: int = 0) -> HandleOutcome:
        try:
            bots = self._admin.list_bots(ctx.user_id)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        if not bots:
            self._say(ctx, "mgr_no_bots")
            return HandleOutcome("manager:/mybots", replied=True)
        shown, page, pages = paginate(bots, page)
        lines: list[Value] = [Text("mgr_bots_header")]
        rows: list[list[Button]] = []
        for bot in shown:
            line = "mgr_bot_line" if self._role(ctx, bot) is BotRole.OWNER else "mgr_bot_line_admin"
            lines.append(Text(line, {"username": bot.username, "status": self._status(bot.status)}))
            rows.append(
                [
                    self._button(ctx, "btn_details", CallbackAction.DETAILS, bot.id, username=bot.username),
                    self._button(ctx, "btn_stats", CallbackAction.STATS, bot.id),
                ]
            )
            rows.append(self._state_buttons(ctx, bot))
        if pages > 1:
            lines.append(Text("mgr_page", {"page": page + 1, "pages": pages}))
            nav = []
            if page > 0:
                nav.append(self._page_button(ctx, "btn_prev_page", page - 1))
            if page < pages - 1:
                nav.append(self._page_button(ctx, "btn_next_page", page + 1))
            rows.append(nav)
        self._show(ctx, Joined(lines), Buttons.of(rows))
        return HandleOutcome("manager:/mybots", replied=True)

    def _details(self, ctx: Ctx, bot_id: str) -> HandleOutcome:
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, _stats = found
        commands = sorted({*bot.settings.custom_commands, *bot.settings.api_commands})
        rows = [
            self._state_buttons(ctx, bot),
            [
                self._button(ctx, "btn_stats", CallbackAction.STATS, bot.id),
                self._button(ctx, "btn_welcome", CallbackAction.SET_WELCOME, bot.id),
            ],
            [
                self._button(ctx, "btn_command", CallbackAction.ADD_COMMAND, bot.id),
                self._button(ctx, "btn_api", CallbackAction.ADD_API_COMMAND, bot.id),
            ],
        ]
        if may(self._role(ctx, bot), BotAction.MANAGE_ADMINS):
            rows.append(
                [
                    self._button(ctx, "btn_invite", CallbackAction.INVITE, bot.id),
                    self._button(ctx, "btn_admins", CallbackAction.ADMINS, bot.id),
                ]
            )
        self._say(
            ctx,
            "mgr_details",
            keyboard=Buttons.of(rows),
            username=bot.username,
            status=self._status(bot.status),
            welcome=bot.settings.welcome_text[:200] or Text("mgr_default_welcome"),
            commands=", ".join(commands) or Text("mgr_none"),
        )
        return HandleOutcome("manager:details", replied=True)

    def _stats(self, ctx: Ctx, bot_id: str) -> HandleOutcome:
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, stats = found
        self._say(
            ctx,
            "mgr_stats",
            username=bot.username,
            users_total=stats.users_total,
            users_today=stats.users_today,
            messages_today=stats.messages_today,
        )
        return HandleOutcome("manager:stats", replied=True)

    def _ask_reauth(self, ctx: Ctx, action: CallbackAction, bot_id: str) -> HandleOutcome:
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, _ = found
        rotate = action is CallbackAction.ROTATE
        reauth = CallbackAction.REAUTH_ROTATE if rotate else CallbackAction.REAUTH_DELETE
        label = Text("action_rotate" if rotate else "action_delete", {"username": bot.username})
        keyboard = Buttons.of(
            [
                [
                    self._button(ctx, "btn_confirm_identity", reauth, bot.id),
                    self._button(ctx, "btn_cancel", CallbackAction.CANCEL, None),
                ]
            ]
        )
        self._say(ctx, "mgr_session_expired", keyboard, action=label)
        return HandleOutcome("manager:reauth", replied=True)

    def _ask_delete(self, ctx: Ctx, bot_id: str) -> HandleOutcome:
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, _ = found
        keyboard = Buttons.of(
            [
                [
                    self._button(ctx, "btn_confirm_delete", CallbackAction.DELETE_DO, bot.id),
                    self._button(ctx, "btn_cancel", CallbackAction.CANCEL, None),
                ]
            ]
        )
        self._say(ctx, "mgr_delete_confirm", keyboard, username=bot.username)
        return HandleOutcome("manager:delete_ask", replied=True)
