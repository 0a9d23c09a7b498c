"""A bot's team (issue 15): its owner and admins, invites, redeeming, revoking, leaving."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from tgm.domain.administration.authorization import MAX_ID_CHARS, Authorization
from tgm.domain.administration.ports import ManagerLookup
from tgm.domain.administration.setting_rules import InvalidSetting
from tgm.domain.bot_roles import (
    DEFAULT_INVITE_TTL,
    INVITE_CODE_SHAPE,
    MAX_ADMINS,
    MAX_PENDING_INVITES,
    BotAction,
    BotAdminStore,
    BotRole,
    BotTeam,
    CoAdmin,
    Invite,
    IssuedInvite,
    invite_code_hash,
    join_link,
    new_invite_code,
)
from tgm.domain.bots import Bot, BotStatus
from tgm.domain.errors import BotNotFound, IllegalTransition
from tgm.domain.ports import BotRepository, Clock


class TeamAdministration:
    """`admins` None: owners only — the team is the owner, and every invite is refused."""

    def __init__(
        self,
        bots: BotRepository,
        authorization: Authorization,
        admins: BotAdminStore | None,
        manager: ManagerLookup,
        clock: Clock,
        invite_ttl: timedelta = DEFAULT_INVITE_TTL,
    ) -> None:
        self._bots = bots
        self._authorization = authorization
        self._admins = admins
        self._manager = manager
        self._clock = clock
        self._invite_ttl = invite_ttl

    def team(self, bot_id: str) -> BotTeam:
        """The bot's owner and admins, for a service acting on the bot's behalf (a broadcast's report, a feedback
        message forwarded to the admins). No actor: callers decide who may learn it."""
        bot = self._bots.get(bot_id) if bot_id and len(bot_id) <= MAX_ID_CHARS else None
        if bot is None or bot.is_manager:
            raise BotNotFound("no such bot")
        return BotTeam(bot, tuple(self._admins.admins(bot.id)) if self._admins is not None else ())

    def _admin_store(self) -> BotAdminStore:
        if self._admins is None:
            raise InvalidSetting("co-admins are not configured", "invite_invalid")
        return self._admins

    def create_invite(self, actor_id: int, bot_id: str) -> IssuedInvite:
        """A one-time code for one bot, expiring after the invite TTL (owner only). Only its hash is stored."""
        store = self._admin_store()
        bot = self._authorization.bot_for(actor_id, bot_id, BotAction.MANAGE_ADMINS)
        if bot.status not in (BotStatus.ACTIVE, BotStatus.DISABLED):
            raise IllegalTransition(f"bot {bot.id}: a {bot.status.value} bot takes no admins")
        manager = self._manager.manager_bot()
        if manager is None:
            raise BotNotFound("no manager bot is registered")
        now = self._clock.now()
        if len(store.pending_invites(bot.id, now)) >= MAX_PENDING_INVITES:
            raise InvalidSetting(f"at most {MAX_PENDING_INVITES} open invites per bot", "too_many_invites")
        if len(store.admin_ids(bot.id)) >= MAX_ADMINS:
            raise InvalidSetting(f"at most {MAX_ADMINS} admins per bot", "too_many_admins")
        code = new_invite_code()
        invite = Invite(
            id=str(uuid4()),
            bot_id=bot.id,
            code_sha256=invite_code_hash(code),
            created_by=actor_id,
            created_at=now,
            expires_at=now + self._invite_ttl,
        )
        store.add_invite(invite)
        return IssuedInvite(bot, invite.id, code, join_link(manager.username, code), invite.expires_at)

    def redeem_invite(self, actor_id: int, code: str) -> Bot:
        """Makes the actor an admin of the invite's bot; every refusal changes nothing (InvalidSetting with the
        reason: invite_invalid, invite_expired, invite_used, invite_own_bot, invite_already_admin, too_many_admins)."""
        store = self._admin_store()
        code = code.strip()
        if actor_id <= 0 or not INVITE_CODE_SHAPE.fullmatch(code):
            raise InvalidSetting("that is not an invite code", "invite_invalid")
        invite = store.invite_by_hash(invite_code_hash(code))
        bot = self._bots.get(invite.bot_id) if invite is not None else None
        if invite is None or bot is None or invite.revoked_at is not None or bot.is_manager:
            raise InvalidSetting("no such invite", "invite_invalid")
        now = self._clock.now()
        if invite.used_at is not None:
            raise InvalidSetting("the invite was used already", "invite_used")
        if now >= invite.expires_at:
            raise InvalidSetting("the invite expired", "invite_expired")
        if bot.status not in (BotStatus.ACTIVE, BotStatus.DISABLED):
            raise InvalidSetting("no such invite", "invite_invalid")
        role = self._authorization.role(bot, actor_id)
        if role is BotRole.OWNER:
            raise InvalidSetting("the owner cannot join their own bot", "invite_own_bot")
        if role is BotRole.ADMIN:
            raise InvalidSetting("already an admin of that bot", "invite_already_admin")
        if len(store.admin_ids(bot.id)) >= MAX_ADMINS:
            raise InvalidSetting(f"at most {MAX_ADMINS} admins per bot", "too_many_admins")
        admin = CoAdmin(str(uuid4()), bot.id, actor_id, added_by=invite.created_by, added_at=now)
        if not store.redeem(invite.id, admin):
            raise InvalidSetting("the invite was used already", "invite_used")  # lost a race for it
        return bot

    def admins(self, actor_id: int, bot_id: str) -> tuple[Bot, list[CoAdmin], list[Invite]]:
        """The bot's admins and its pending invites (owner only)."""
        store = self._admin_store()
        bot = self._authorization.bot_for(actor_id, bot_id, BotAction.MANAGE_ADMINS)
        return bot, store.admins(bot.id), store.pending_invites(bot.id, self._clock.now())

    def revoke_admin(self, actor_id: int, membership_id: str) -> tuple[Bot, CoAdmin]:
        """The owner removes an admin (or an admin removes themself): their next call is refused."""
        store = self._admin_store()
        membership = store.membership(membership_id) if 0 < len(membership_id) <= MAX_ID_CHARS else None
        if membership is None:
            raise InvalidSetting("that person is no longer an admin", "admin_unknown")
        action = BotAction.VIEW if membership.telegram_user_id == actor_id else BotAction.MANAGE_ADMINS
        bot = self._authorization.bot_for(actor_id, membership.bot_id, action)
        if not store.remove_admin(bot.id, membership.telegram_user_id):
            raise InvalidSetting("that person is no longer an admin", "admin_unknown")
        return bot, membership

    def leave(self, actor_id: int, bot_id: str) -> Bot:
        """An admin steps down on their own; the owner cannot (they delete the bot instead)."""
        store = self._admin_store()
        bot, role = self._authorization.authorized(actor_id, bot_id, BotAction.VIEW)
        if role is BotRole.OWNER:
            raise InvalidSetting("the owner cannot leave their own bot", "owner_cannot_leave")
        if not store.remove_admin(bot.id, actor_id):
            raise InvalidSetting("no longer an admin", "admin_unknown")
        return bot

    def revoke_invite(self, actor_id: int, invite_id: str) -> Bot:
        """The owner withdraws a pending invite: its code no longer works."""
        store = self._admin_store()
        invite = store.invite(invite_id) if 0 < len(invite_id) <= MAX_ID_CHARS else None
        if invite is None:
            raise InvalidSetting("no such invite", "invite_invalid")
        bot = self._authorization.bot_for(actor_id, invite.bot_id, BotAction.MANAGE_ADMINS)
        if not store.revoke_invite(invite.id, self._clock.now()):
            raise InvalidSetting("the invite is no longer open", "invite_used")
        return bot
