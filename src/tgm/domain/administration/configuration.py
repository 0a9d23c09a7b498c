"""Changing a bot's settings (welcome, commands, maintenance, blocks, limits, CAPTCHA, inbox) for its team."""

from __future__ import annotations

from tgm.domain.administration.authorization import Authorization
from tgm.domain.administration.concurrency import retrying
from tgm.domain.administration.ports import BlockUser, SettingsChange
from tgm.domain.administration.setting_rules import InvalidSetting, settings_after
from tgm.domain.bot_roles import BotAction, BotAdminStore
from tgm.domain.bots import Bot, BotStatus
from tgm.domain.errors import IllegalTransition
from tgm.domain.ports import BotRepository, Clock


class BotConfiguration:
    def __init__(
        self, bots: BotRepository, authorization: Authorization, admins: BotAdminStore | None, clock: Clock
    ) -> None:
        self._bots = bots
        self._authorization = authorization
        self._admins = admins
        self._clock = clock

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        return retrying(lambda: self._update_settings(actor_id, bot_id, change))

    def _update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        bot = self._authorization.bot_for(actor_id, bot_id, BotAction.CONFIGURE)
        if bot.status not in (BotStatus.ACTIVE, BotStatus.DISABLED):
            raise IllegalTransition(f"bot {bot.id}: a {bot.status.value} bot cannot be configured")
        if isinstance(change, BlockUser) and self._in_team(bot, change.telegram_user_id):
            # A co-admin blocking the owner (or another admin) as a user would silence their inbox replies.
            raise InvalidSetting("the bot's owner and admins cannot be blocked", "block_team_member")
        now = self._clock.now()
        bot.settings = settings_after(bot.settings, change, int(now.timestamp()))
        bot.updated_at = now
        self._bots.save(bot)
        return bot

    def _in_team(self, bot: Bot, telegram_user_id: int) -> bool:
        if telegram_user_id == bot.owner_id:
            return True
        admins = self._admins.admins(bot.id) if self._admins is not None else ()
        return any(admin.telegram_user_id == telegram_user_id for admin in admins)
