"""Co-admins: /invite, /join (or /start <code>), /admins, /leave and the revoke buttons."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import TypeVar

from tgm.domain.administration.setting_rules import SETTING_REASON_CODES, InvalidSetting
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.errors import ActionNotPermitted, BotNotFound, DomainError
from tgm.domain.manager_bot.commands import USAGE_KEYS
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.registry_calls import RegistryCalls
from tgm.domain.telegram_update import TelegramUser
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Button, Buttons, Joined, Text, Value

logger = logging.getLogger(__name__)
_R = TypeVar("_R")


# How an invite's expiry is shown (UTC).
EXPIRY_FORMAT = "%Y-%m-%d %H:%M"
MAX_NAME_CHARS = 64


class TeamCommands(RegistryCalls):
    """The owner invites and revokes; an admin joins or leaves."""

    def _team_command(self, ctx: Ctx, command: str, arg: str) -> HandleOutcome:
        words = arg.split()
        if len(words) != 1:
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS[command]))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, words[0])
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        if command == "/invite":
            return self._invite(ctx, bot_id)
        if command == "/admins":
            return self._admins(ctx, bot_id)
        bot = self._admin_call(ctx, bot_id, lambda: self._admin.leave(ctx.user_id, bot_id))
        if bot is not None:
            self._say(ctx, "mgr_left", username=bot.username)
        return HandleOutcome("manager:leave", replied=True)

    def _team_call(self, ctx: Ctx, call: Callable[[], _R]) -> _R | None:
        """A co-admin call, or None after telling the actor why not (an invite_* refusal in its own words)."""
        try:
            return call()
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
        except ActionNotPermitted:
            self._say(ctx, "mgr_owner_only")
        except InvalidSetting as error:
            code = error.code if error.code in SETTING_REASON_CODES else "invalid"
            self._say(ctx, "mgr_team_refused", reason=Text(f"setting_{code}"))
        except DomainError as error:
            logger.warning("co-admin call failed", extra={"error": type(error).__name__})
            self._say(ctx, "mgr_unavailable")
        return None

    def _invite(self, ctx: Ctx, bot_id: str) -> HandleOutcome:
        issued = self._team_call(ctx, lambda: self._admin.create_invite(ctx.user_id, bot_id))
        if issued is None:
            return HandleOutcome("manager:invite_refused", replied=True)
        self._say(
            ctx,
            "mgr_invite",
            username=issued.bot.username,
            link=issued.link,
            code=issued.code,
            expires=issued.expires_at.astimezone(UTC).strftime(EXPIRY_FORMAT),
        )
        return HandleOutcome("manager:invite", replied=True)

    def _join(self, ctx: Ctx, code: str, sender: TelegramUser) -> HandleOutcome:
        if not code or len(code.split()) != 1:
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS["/join"]))
            return HandleOutcome("manager:usage", replied=True)
        bot = self._team_call(ctx, lambda: self._admin.redeem_invite(ctx.user_id, code))
        if bot is None:
            return HandleOutcome("manager:join_refused", replied=True)
        self._say(ctx, "mgr_joined", username=bot.username)
        name = sender.first_name or ""
        owner = Ctx(ctx.manager_id, bot.owner_id, bot.owner_id, None, ctx.effects)  # their private chat, default lang
        self._say(owner, "mgr_admin_joined", name=name[:MAX_NAME_CHARS], user_id=ctx.user_id, username=bot.username)
        return HandleOutcome("manager:join", replied=True)

    def _admins(self, ctx: Ctx, bot_id: str) -> HandleOutcome:
        found = self._team_call(ctx, lambda: self._admin.admins(ctx.user_id, bot_id))
        if found is None:
            return HandleOutcome("manager:admins_refused", replied=True)
        bot, admins, invites = found
        lines: list[Value] = [Text("mgr_admins_header", {"username": bot.username})]
        rows: list[list[Button]] = []
        for admin in admins:
            since = admin.added_at.astimezone(UTC).strftime(EXPIRY_FORMAT)
            lines.append(Text("mgr_admin_line", {"user_id": admin.telegram_user_id, "since": since}))
            rows.append(
                [
                    self._button(
                        ctx, "btn_revoke_admin", CallbackAction.REVOKE_ADMIN, admin.id, user_id=admin.telegram_user_id
                    )
                ]
            )
        if not admins:
            lines.append(Text("mgr_no_admins"))
        for invite in invites:
            until = invite.expires_at.astimezone(UTC).strftime(EXPIRY_FORMAT)
            lines.append(Text("mgr_invite_line", {"expires": until}))
            rows.append(
                [self._button(ctx, "btn_revoke_invite", CallbackAction.REVOKE_INVITE, invite.id, expires=until)]
            )
        rows.append([self._button(ctx, "btn_invite", CallbackAction.INVITE, bot.id)])
        self._show(ctx, Joined(lines), Buttons.of(rows))
        return HandleOutcome("manager:admins", replied=True)

    def _revoke_admin(self, ctx: Ctx, membership_id: str) -> HandleOutcome:
        done = self._team_call(ctx, lambda: self._admin.revoke_admin(ctx.user_id, membership_id))
        if done is None:
            return HandleOutcome("manager:revoke_refused", replied=True)
        bot, removed = done
        self._say(ctx, "mgr_admin_revoked", user_id=removed.telegram_user_id, username=bot.username)
        if removed.telegram_user_id != ctx.user_id:
            former = Ctx(ctx.manager_id, removed.telegram_user_id, removed.telegram_user_id, None, ctx.effects)
            self._say(former, "mgr_you_were_revoked", username=bot.username)
        return HandleOutcome("manager:revoke_admin", replied=True)

    def _revoke_invite(self, ctx: Ctx, invite_id: str) -> HandleOutcome:
        bot = self._team_call(ctx, lambda: self._admin.revoke_invite(ctx.user_id, invite_id))
        if bot is None:
            return HandleOutcome("manager:revoke_refused", replied=True)
        self._say(ctx, "mgr_invite_revoked", username=bot.username)
        return HandleOutcome("manager:revoke_invite", replied=True)
