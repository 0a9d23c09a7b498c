"""/limits and /captcha: a bot's own rate limits, cooldowns and captcha mode, shown or changed."""

from __future__ import annotations

from tgm.domain.administration.ports import SetCaptchaMode
from tgm.domain.manager_bot.commands import USAGE_KEYS
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.limits import describe_limits, parse_limits
from tgm.domain.manager_bot.registry_calls import RegistryCalls
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Text


class LimitsCaptchaCommands(RegistryCalls):
    """/limits @bot [changes] and /captcha @bot [mode]."""

    def _limits_command(self, ctx: Ctx, arg: str) -> HandleOutcome:
        ref, _, rest = arg.strip().partition(" ")
        changes = parse_limits(rest)
        if not ref or changes is None:
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS["/limits"]))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        bot = self._bot_after(ctx, bot_id, changes)
        if isinstance(bot, HandleOutcome):
            return bot
        self._show(ctx, describe_limits(bot.username, bot.settings))
        return HandleOutcome("manager:limits" if not changes else "manager:limits_set", replied=True)

    def _captcha_command(self, ctx: Ctx, arg: str) -> HandleOutcome:
        ref, _, mode = arg.strip().partition(" ")
        mode = mode.strip().lower()
        if not ref or len(mode.split()) > 1:
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS["/captcha"]))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        bot = self._bot_after(ctx, bot_id, (SetCaptchaMode(mode),) if mode else ())
        if isinstance(bot, HandleOutcome):
            return bot
        shown = Text(f"captcha_mode_{bot.settings.captcha_mode.value}")
        self._say(ctx, "mgr_captcha", username=bot.username, mode=shown)
        return HandleOutcome("manager:captcha", replied=True)
