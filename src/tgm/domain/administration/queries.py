"""What a bot's team reads: their bots, a bot's details and stats, its subscribers."""

from __future__ import annotations

from dataclasses import replace

from tgm.domain.administration.authorization import Authorization
from tgm.domain.administration.ports import BotStats, InteractionStats, Subscriber, SubscriberStats, SubscriberStatus
from tgm.domain.administration.setting_rules import InvalidSetting
from tgm.domain.bot_roles import BotAction, BotAdminStore
from tgm.domain.bots import Bot, BotStatus
from tgm.domain.ports import BotRepository, Clock

MAX_SUBSCRIBERS_PAGE = 1000


class BotQueries:
    def __init__(
        self,
        bots: BotRepository,
        authorization: Authorization,
        admins: BotAdminStore | None,
        stats: InteractionStats,
        clock: Clock,
    ) -> None:
        self._bots = bots
        self._authorization = authorization
        self._admins = admins
        self._stats = stats
        self._clock = clock

    def list_bots(self, owner_id: int) -> list[Bot]:
        """The bots the actor owns, then those they administer (each by creation time); deleted ones left out.
        A bot's role for the actor: owner when `bot.owner_id` is theirs, else admin."""
        owned = self._bots.list_by_owner(owner_id)
        administered: list[Bot] = []
        if self._admins is not None and owner_id > 0:
            for bot_id in self._admins.bots_administered_by(owner_id):
                bot = self._bots.get(bot_id)
                if bot is not None and bot.owner_id != owner_id and not bot.is_manager:
                    administered.append(bot)
        administered.sort(key=lambda bot: (bot.created_at, bot.id))
        return [bot for bot in (*owned, *administered) if bot.status is not BotStatus.DELETED]

    def details(self, actor_id: int, bot_id: str) -> tuple[Bot, BotStats]:
        bot = self._authorization.bot_for(actor_id, bot_id, BotAction.VIEW)
        return bot, self._stats.stats(bot.id, self._clock.now())

    def subscriber_stats(self, actor_id: int, bot_id: str) -> tuple[Bot, SubscriberStats]:
        """The actor's bot's subscribers by status; "blocked by the admin" are the /blocks in force now."""
        bot = self._authorization.bot_for(actor_id, bot_id, BotAction.VIEW)
        now = self._clock.now()
        in_force = [user for user, until in bot.settings.blocked_users.items() if until > now.timestamp()]
        return bot, self._stats.subscriber_stats(bot.id, now, in_force)

    def list_subscribers(self, actor_id: int, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        """One page of the actor's bot's subscribers (user id ascending, after `after_user_id`; at most
        MAX_SUBSCRIBERS_PAGE), a /block in force shown as blocked by the admin."""
        bot = self._authorization.bot_for(actor_id, bot_id, BotAction.VIEW)
        if not 0 < limit <= MAX_SUBSCRIBERS_PAGE:
            raise InvalidSetting(f"a page holds 1-{MAX_SUBSCRIBERS_PAGE} subscribers")
        now = self._clock.now().timestamp()
        in_force = {user for user, until in bot.settings.blocked_users.items() if until > now}
        page = self._stats.list_subscribers(bot.id, max(after_user_id, 0), limit)
        return [
            replace(item, status=SubscriberStatus.BLOCKED_BY_ADMIN) if item.telegram_user_id in in_force else item
            for item in page
        ]
