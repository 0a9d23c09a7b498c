"""The registry's side of the manager bot: every admin operation, checked against the acting admin (the BotAdmin
port, served to the dispatcher over gRPC).

One use-case family per module, each given only what it needs; this class builds them from one set of
collaborators and answers for all of them:

    authorization.py        who may do what on a bot (tenant isolation: others' bots are BotNotFound)
    chat_registration.py    a sealed token pasted in the manager's chat, a managed bot created through it
    queries.py              the actor's bots, a bot's details and stats, its subscribers
    lifecycle.py            enable, disable, rotate the webhook secret, delete
    configuration.py        settings changes (their rules: setting_rules.py)
    team.py                 the bot's team: invites, joining, revoking, leaving
    interaction_reports.py  the dispatcher's reports: interactions, users who blocked the bot
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from tgm.domain.administration.authorization import Authorization
from tgm.domain.administration.chat_registration import ChatRegistration
from tgm.domain.administration.configuration import BotConfiguration
from tgm.domain.administration.interaction_reports import InteractionReports
from tgm.domain.administration.lifecycle import BotLifecycle
from tgm.domain.administration.ports import (
    BlockedByUser,
    BotStats,
    InteractionStats,
    ManagerLookup,
    Registration,
    SettingsChange,
    Subscriber,
    SubscriberStats,
)
from tgm.domain.administration.queries import BotQueries
from tgm.domain.administration.register_bot import RegisterBot
from tgm.domain.administration.team import TeamAdministration
from tgm.domain.bot_roles import (
    DEFAULT_INVITE_TTL,
    BotAction,
    BotAdminStore,
    BotRole,
    BotTeam,
    CoAdmin,
    Invite,
    IssuedInvite,
)
from tgm.domain.bots import Bot
from tgm.domain.ports import BotRepository, Clock, TelegramApi, TokenVault


class BotAdministration:
    def __init__(
        self,
        bots: BotRepository,
        manager: ManagerLookup,
        telegram: TelegramApi,
        vault: TokenVault,
        clock: Clock,
        register_bot: RegisterBot,
        stats: InteractionStats,
        admins: BotAdminStore | None = None,
        invite_ttl: timedelta = DEFAULT_INVITE_TTL,
    ) -> None:
        """`admins` None: owners only (nobody can be invited)."""
        self._authorization = Authorization(bots, admins)
        self._registration = ChatRegistration(manager, telegram, vault, register_bot, admins)
        self._queries = BotQueries(bots, self._authorization, admins, stats, clock)
        self._lifecycle = BotLifecycle(bots, self._authorization, telegram, vault, clock, register_bot)
        self._configuration = BotConfiguration(bots, self._authorization, admins, clock)
        self._team = TeamAdministration(bots, self._authorization, admins, manager, clock, invite_ttl)
        self._reports = InteractionReports(stats, clock)

    def authorized(self, actor_id: int, bot_id: str, action: BotAction) -> tuple[Bot, BotRole]:
        return self._authorization.authorized(actor_id, bot_id, action)

    def register_sealed(self, owner_id: int, ciphertext: bytes, sealed_by_bot_id: str, chat_id: int) -> Registration:
        return self._registration.register_sealed(owner_id, ciphertext, sealed_by_bot_id, chat_id)

    def register_managed(self, owner_id: int, managed_bot_user_id: int) -> Registration:
        return self._registration.register_managed(owner_id, managed_bot_user_id)

    def list_bots(self, owner_id: int) -> list[Bot]:
        return self._queries.list_bots(owner_id)

    def details(self, actor_id: int, bot_id: str) -> tuple[Bot, BotStats]:
        return self._queries.details(actor_id, bot_id)

    def subscriber_stats(self, actor_id: int, bot_id: str) -> tuple[Bot, SubscriberStats]:
        return self._queries.subscriber_stats(actor_id, bot_id)

    def list_subscribers(self, actor_id: int, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        return self._queries.list_subscribers(actor_id, bot_id, after_user_id, limit)

    def set_enabled(self, actor_id: int, bot_id: str, enabled: bool) -> Bot:
        return self._lifecycle.set_enabled(actor_id, bot_id, enabled)

    def rotate_secret(self, actor_id: int, bot_id: str) -> Bot:
        return self._lifecycle.rotate_secret(actor_id, bot_id)

    def delete(self, actor_id: int, bot_id: str) -> Bot:
        return self._lifecycle.delete(actor_id, bot_id)

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        return self._configuration.update_settings(actor_id, bot_id, change)

    def team(self, bot_id: str) -> BotTeam:
        return self._team.team(bot_id)

    def create_invite(self, actor_id: int, bot_id: str) -> IssuedInvite:
        return self._team.create_invite(actor_id, bot_id)

    def redeem_invite(self, actor_id: int, code: str) -> Bot:
        return self._team.redeem_invite(actor_id, code)

    def admins(self, actor_id: int, bot_id: str) -> tuple[Bot, list[CoAdmin], list[Invite]]:
        return self._team.admins(actor_id, bot_id)

    def revoke_admin(self, actor_id: int, membership_id: str) -> tuple[Bot, CoAdmin]:
        return self._team.revoke_admin(actor_id, membership_id)

    def leave(self, actor_id: int, bot_id: str) -> Bot:
        return self._team.leave(actor_id, bot_id)

    def revoke_invite(self, actor_id: int, invite_id: str) -> Bot:
        return self._team.revoke_invite(actor_id, invite_id)

    def record_interaction(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        self._reports.record_interaction(bot_id, telegram_user_id, language_code)

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int:
        return self._reports.mark_blocked(entries)
