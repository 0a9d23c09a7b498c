"""Calls to the registry's admin side (BotAdmin) and what the admin is told when one is refused."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from tgm.domain.administration.ports import BotStats, SettingsChange
from tgm.domain.administration.setting_rules import SETTING_REASON_CODES, InvalidSetting
from tgm.domain.bots import Bot
from tgm.domain.errors import ActionNotPermitted, BotNotFound, DomainError, IllegalTransition
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.keyboards import Keyboards
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Text

logger = logging.getLogger(__name__)


class RegistryCalls(Keyboards):
    """Resolves a bot named by the admin and turns refusals into replies."""

    def _admin_call(self, ctx: Ctx, bot_id: str, call: Callable[[], Bot]) -> Bot | None:
        try:
            return call()
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
        except ActionNotPermitted:
            self._say(ctx, "mgr_owner_only")
        except IllegalTransition:
            self._say_illegal(ctx, bot_id)
        except InvalidSetting as error:
            self._say_invalid_setting(ctx, error)
        except DomainError as error:
            logger.warning("admin call failed", extra={"error": type(error).__name__})
            self._say(ctx, "mgr_unavailable")
        return None

    def _say_invalid_setting(self, ctx: Ctx, error: InvalidSetting) -> None:
        code = error.code if error.code in SETTING_REASON_CODES else "invalid"
        self._say(ctx, "mgr_invalid_setting", reason=Text(f"setting_{code}"))

    def _details_or_say(self, ctx: Ctx, bot_id: str) -> tuple[Bot, BotStats] | HandleOutcome:
        """The actor's bot and its stats, or the outcome after telling them it is not found / unavailable."""
        try:
            return self._admin.details(ctx.user_id, bot_id)
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)

    def _say_illegal(self, ctx: Ctx, bot_id: str) -> None:
        try:
            bot, _ = self._admin.details(ctx.user_id, bot_id)
        except DomainError:
            self._say(ctx, "callback_invalid")
            return
        self._say(ctx, "mgr_illegal_move", username=bot.username, status=self._status(bot.status))

    def _resolve(self, ctx: Ctx, ref: str) -> str | None:
        """'@name' → the id of the actor's bot of that name; anything else is passed on as an id (the registry
        checks ownership either way)."""
        if ref.startswith("@"):
            try:
                bots = self._admin.list_bots(ctx.user_id)
            except DomainError:
                return None
            wanted = ref[1:].lower()
            return next((bot.id for bot in bots if bot.username.lower() == wanted), "")
        return ref

    def _resolve_or_say(self, ctx: Ctx, ref: str) -> str | HandleOutcome:
        """The bot id `ref` names among the actor's bots, or the outcome after saying why there is none."""
        bot_id = self._resolve(ctx, ref)
        if bot_id is None:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        if not bot_id:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        return bot_id

    def _bot_after(self, ctx: Ctx, bot_id: str, changes: Sequence[SettingsChange]) -> Bot | HandleOutcome:
        """The bot after `changes` (none: as it is), or the outcome after saying why not."""
        if not changes:
            details = self._details_or_say(ctx, bot_id)
            return details if isinstance(details, HandleOutcome) else details[0]
        bot: Bot | None = None
        for change in changes:
            bot = self._admin_call(ctx, bot_id, self._settings_call(ctx.user_id, bot_id, change))
            if bot is None:
                return HandleOutcome("manager:settings_refused", replied=True)
        assert bot is not None
        return bot

    def _settings_call(self, actor_id: int, bot_id: str, change: SettingsChange) -> Callable[[], Bot]:
        return lambda: self._admin.update_settings(actor_id, bot_id, change)
