"""Who may do what on a bot: the registry's one authorization check (roles: src/tgm/domain/bot_roles.py).

Tenant isolation lives here: a bot on which the actor has no role, or the manager bot itself, is `BotNotFound`,
exactly like a bot that does not exist, so nobody learns whether someone else's bot exists. A role that may not do
the action (an admin deleting the bot) is `ActionNotPermitted`.
"""

from __future__ import annotations

from tgm.domain.bot_roles import BotAction, BotAdminStore, BotRole, may, role_in
from tgm.domain.bots import Bot
from tgm.domain.errors import ActionNotPermitted, BotNotFound
from tgm.domain.ports import BotRepository

MAX_ID_CHARS = 64  # a longer id is no id of ours: refused before any lookup


class Authorization:
    """`admins` None: owners only (nobody can be invited)."""

    def __init__(self, bots: BotRepository, admins: BotAdminStore | None) -> None:
        self._bots = bots
        self._admins = admins

    def role(self, bot: Bot, actor_id: int) -> BotRole | None:
        if bot.owner_id == actor_id or self._admins is None or bot.is_manager or actor_id <= 0:
            return role_in(bot, actor_id, frozenset())  # owners need no lookup
        return role_in(bot, actor_id, self._admins.admin_ids(bot.id))

    def authorized(self, actor_id: int, bot_id: str, action: BotAction) -> tuple[Bot, BotRole]:
        """The bot and the actor's role on it when they may do `action`.

        No role (or no such bot, or the manager bot): BotNotFound, the same answer whether it exists or not. A role
        that may not do it: ActionNotPermitted. Read fresh on every call, so a revoked admin is refused at once.
        """
        bot = self._bots.get(bot_id) if bot_id and len(bot_id) <= MAX_ID_CHARS else None
        role = self.role(bot, actor_id) if bot is not None else None
        if bot is None or role is None:
            raise BotNotFound("no such bot")
        if not may(role, action):
            raise ActionNotPermitted(
                f"an {role.value} may not {action.value}", actor_id, bot.id, action.value, role.value
            )
        return bot, role

    def bot_for(self, actor_id: int, bot_id: str, action: BotAction) -> Bot:
        """The bot when the actor may do `action` on it (as `authorized`)."""
        return self.authorized(actor_id, bot_id, action)[0]
