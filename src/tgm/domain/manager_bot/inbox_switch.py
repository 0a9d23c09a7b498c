"""/inbox: switching a bot's feedback inbox on or off."""

from __future__ import annotations

from tgm.domain.administration.ports import SetInboxMode
from tgm.domain.inbox import unreachable_members
from tgm.domain.manager_bot.commands import USAGE_KEYS
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.registry_calls import RegistryCalls
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Text

INBOX_ON = ("on", "ligar")
INBOX_OFF = ("off", "desligar")


class InboxSwitchCommands(RegistryCalls):
    """/inbox @bot on|off."""

    def _inbox_command(self, ctx: Ctx, arg: str) -> HandleOutcome:
        """/inbox @bot on|off (no mode: as it is). Switched on, it warns each admin the bot cannot write to yet."""
        ref, _, mode = arg.strip().partition(" ")
        mode = mode.strip().lower()
        if not ref or mode not in ("", *INBOX_ON, *INBOX_OFF):
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS["/inbox"]))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        bot = self._bot_after(ctx, bot_id, (SetInboxMode(mode in INBOX_ON),) if mode else ())
        if isinstance(bot, HandleOutcome):
            return bot
        self._say(ctx, "mgr_inbox_on" if bot.settings.inbox_enabled else "mgr_inbox_off", username=bot.username)
        if bot.settings.inbox_enabled and self._inbox_links is not None:
            actor, others = unreachable_members(bot, ctx.user_id, self._inbox_links, self._bot_teams)
            if actor:
                self._say(ctx, "mgr_inbox_unreachable", username=bot.username)
            if others:
                self._say(ctx, "mgr_inbox_team_unreachable", username=bot.username, count=others)
        return HandleOutcome("manager:inbox", replied=True)
