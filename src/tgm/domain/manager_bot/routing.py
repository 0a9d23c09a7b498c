"""Routing: a message to its command family (or the conversation it answers), a button press to its action."""

from __future__ import annotations

import logging
from typing import Any

from tgm.domain.bot_roles import INVITE_CODE_SHAPE
from tgm.domain.callback_tokens import CallbackAction, CallbackClaim
from tgm.domain.effects import EffectIds
from tgm.domain.events import Event, EventKind, Outcome, telegram_actor
from tgm.domain.manager_bot.bots import BotsCommands
from tgm.domain.manager_bot.broadcast import BroadcastCommands
from tgm.domain.manager_bot.commands import MANAGER_COMMANDS, split_command
from tgm.domain.manager_bot.conversation import AWAIT_API, AWAIT_BROADCAST, AWAIT_COMMAND, AWAIT_TOKEN, AWAIT_WELCOME
from tgm.domain.manager_bot.dependencies import Ctx, ctx_for_update
from tgm.domain.manager_bot.inbox_switch import InboxSwitchCommands
from tgm.domain.manager_bot.limits_captcha import LimitsCaptchaCommands
from tgm.domain.manager_bot.registration import RegistrationCommands
from tgm.domain.manager_bot.settings import SettingsCommands
from tgm.domain.manager_bot.subscribers import SubscribersCommands
from tgm.domain.manager_bot.team import TeamCommands
from tgm.domain.manager_bot.view import CreateBotKeyboard, RemoveKeyboard
from tgm.domain.telegram_update import TelegramUpdate
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Text

logger = logging.getLogger(__name__)


# Buttons that confirm something irreversible act once: a second press or a replay is refused, so the
# re-confirmation asked when a session lapsed cannot be replayed. (The listing's "new secret" stays re-pressable:
# with a fresh session it is an ordinary action, and without one it leads to such a one-time confirmation.)
ONE_TIME_ACTIONS = frozenset(
    {
        CallbackAction.DELETE_DO,
        CallbackAction.REAUTH_ROTATE,
        CallbackAction.REAUTH_DELETE,
        CallbackAction.BROADCAST_CONFIRM,
    }
)

CREATE_BOT = CreateBotKeyboard(Text("btn_create_bot"))

BROADCAST_ACTIONS = frozenset({CallbackAction.BROADCAST_CONFIRM, CallbackAction.BROADCAST_CANCEL})


def _bot_ref(claim: CallbackClaim) -> str | None:
    """The bot a button names, for the event trail (a broadcast's buttons carry the broadcast's id instead)."""
    return None if claim.action in BROADCAST_ACTIONS else claim.bot_id


class Routing(
    RegistrationCommands,
    BotsCommands,
    SettingsCommands,
    LimitsCaptchaCommands,
    SubscribersCommands,
    BroadcastCommands,
    InboxSwitchCommands,
    TeamCommands,
):
    """Checks who is asking, then hands the message or the press to the family that answers it."""

    def _message(self, envelope: UpdateEnvelope, message: dict[str, Any]) -> HandleOutcome:
        view = envelope.view
        sender, chat_id = view.sender, view.chat_id
        if sender is None or chat_id is None:
            return HandleOutcome("manager:ignored")
        if "managed_bot_created" in message:
            # Telegram's service message; the `managed_bot` update that comes with it registers the bot.
            return HandleOutcome("manager:managed_bot_created")
        ctx = ctx_for_update(envelope, chat_id, sender.id, sender.language_code)
        text = envelope.text or ""
        if envelope.sealed_texts:
            # A token came in: the message goes away before anything else happens.
            self._delete(ctx, view.message_id)
        if view.chat_type != "private":
            return HandleOutcome("manager:ignored_not_private")
        command, arg = split_command(text)
        state = self._conversations.get(ctx.chat_id, ctx.user_id)
        if command == "/start" and INVITE_CODE_SHAPE.fullmatch(arg):
            command = "/join"  # the invite link: https://t.me/<manager>?start=<code>; other /start payloads: help
        if command in ("/start", "/help"):
            self._conversations.clear(ctx.chat_id, ctx.user_id)
            self._say(ctx, "mgr_help", CREATE_BOT)
            return HandleOutcome(f"manager:{command}", replied=True)
        if command == "/cancel":
            self._conversations.clear(ctx.chat_id, ctx.user_id)
            self._say(ctx, "mgr_cancelled", RemoveKeyboard())
            return HandleOutcome("manager:/cancel", replied=True)
        if not self._allowed(ctx.user_id):
            self._say(ctx, "mgr_not_allowed")
            return HandleOutcome("manager:not_allowed", replied=True)
        self._sessions.touch(ctx.user_id, self._config.session_ttl_seconds)

        if command == "/addbot":
            if not arg:
                self._conversations.set(ctx.chat_id, ctx.user_id, AWAIT_TOKEN, self._config.conversation_ttl_seconds)
                self._say(ctx, "mgr_send_token")
                return HandleOutcome("manager:await_token", replied=True)
            if not envelope.sealed_texts:
                self._delete(ctx, message.get("message_id"))  # maybe a mangled token: do not leave it around
            return self._register_from(ctx, arg, envelope.sealed_texts)
        if command is None and (envelope.sealed_texts or state == AWAIT_TOKEN):
            self._conversations.clear(ctx.chat_id, ctx.user_id)
            if not envelope.sealed_texts:
                self._delete(ctx, message.get("message_id"))
            return self._register_from(ctx, text, envelope.sealed_texts)
        if envelope.sealed_texts:
            self._say(ctx, "mgr_token_removed")
            return HandleOutcome("manager:token_removed", replied=True)
        if command == "/newbot":
            self._say(ctx, "mgr_new_bot", CREATE_BOT)
            return HandleOutcome("manager:/newbot", replied=True)
        if command == "/mybots":
            return self._list(ctx)
        if command in ("/setwelcome", "/setcommand", "/setapi", "/delcommand", "/maintenance", "/block", "/unblock"):
            return self._configure_command(ctx, command, arg)
        if command == "/limits":
            return self._limits_command(ctx, arg)
        if command == "/captcha":
            return self._captcha_command(ctx, arg)
        if command == "/subscribers":
            return self._subscribers_command(ctx, arg)
        if command == "/broadcast":
            return self._broadcast_command(ctx, arg)
        if (
            state is not None
            and state.startswith(AWAIT_BROADCAST)
            and (command is None or command not in MANAGER_COMMANDS)
        ):
            self._conversations.clear(ctx.chat_id, ctx.user_id)
            return self._broadcast_draft(ctx, state.removeprefix(AWAIT_BROADCAST), message)
        if command == "/inbox":
            return self._inbox_command(ctx, arg)
        if command == "/join":
            return self._join(ctx, arg, sender)
        if command in ("/invite", "/admins", "/leave"):
            return self._team_command(ctx, command, arg)
        if (
            state is not None
            and state.startswith((AWAIT_WELCOME, AWAIT_COMMAND, AWAIT_API))
            and (command is None or command not in MANAGER_COMMANDS)
        ):
            self._conversations.clear(ctx.chat_id, ctx.user_id)
            kind, _, bot_id = state.partition(":")
            return self._configure_answer(ctx, kind + ":", bot_id, text)
        self._say(ctx, "mgr_unknown")
        return HandleOutcome("manager:unknown", replied=True)

    def _callback(self, envelope: UpdateEnvelope, view: TelegramUpdate) -> HandleOutcome:
        sender, query_id = view.sender, view.callback_id
        if sender is None or query_id is None:
            return HandleOutcome("manager:ignored")
        lang, chat_id, data = sender.language_code, view.chat_id, view.callback_data
        claim = self._tokens.verify(data, sender.id, chat_id) if data is not None and chat_id is not None else None
        if claim is None or chat_id is None:
            effects = EffectIds.for_update(envelope)
            self._view.answer_button(envelope.bot_id, query_id, lang, Text("callback_invalid"), effects=effects)
            # Tampered, expired, another user's or another chat's button: one reason, as the user is told.
            self._callback_refused(sender.id, None, "invalid")
            return HandleOutcome("manager:callback_invalid")
        ctx = ctx_for_update(envelope, chat_id, sender.id, lang)
        if not self._allowed(ctx.user_id):
            self._view.answer_button(ctx.manager_id, query_id, lang, Text("mgr_not_allowed"), effects=ctx.effects)
            self._callback_refused(ctx.user_id, _bot_ref(claim), "not_allowed", claim.action)
            return HandleOutcome("manager:not_allowed")
        if (
            claim.action in ONE_TIME_ACTIONS
            and self._used_buttons is not None
            and not self._used_buttons.use_once(claim.token_id, self._tokens.ttl_seconds)
        ):
            # Pressed before (a replay, or a double tap): a destructive button acts once; the re-confirmation
            # before rotate/delete would otherwise be replayable for the token's whole lifetime.
            self._view.answer_button(ctx.manager_id, query_id, lang, Text("callback_invalid"), effects=ctx.effects)
            self._callback_refused(ctx.user_id, _bot_ref(claim), "replayed", claim.action)
            return HandleOutcome("manager:callback_used")
        fresh = self._sessions.is_fresh(ctx.user_id)
        self._view.answer_button(ctx.manager_id, query_id, lang, effects=ctx.effects)
        action, bot_id = claim.action, claim.bot_id or ""
        if action in BROADCAST_ACTIONS:
            self._sessions.touch(ctx.user_id, self._config.session_ttl_seconds)
            return self._broadcast_button(ctx, action, bot_id, view.message_id or 0)
        if action in (CallbackAction.REAUTH_ROTATE, CallbackAction.REAUTH_DELETE):
            # The admin confirmed it is them: a new session, then the action they asked for.
            self._sessions.touch(ctx.user_id, self._config.session_ttl_seconds)
            action = CallbackAction.ROTATE if action is CallbackAction.REAUTH_ROTATE else CallbackAction.DELETE_DO
        elif action in (CallbackAction.ROTATE, CallbackAction.DELETE_DO) and not fresh:
            return self._ask_reauth(ctx, action, bot_id)
        else:
            self._sessions.touch(ctx.user_id, self._config.session_ttl_seconds)
        return self._run_action(ctx, action, bot_id, claim.page)

    def _callback_refused(
        self, user_id: int, bot_id: str | None, reason: str, action: CallbackAction | None = None
    ) -> None:
        """A refused button press goes to the event trail (rare, so one registry call each; the recorder sends it
        off this thread). Never in the user's way: a failure is logged, the answer already went."""
        if self._events is None:
            return
        details = {"reason": reason} if action is None else {"reason": reason, "action": action.name.lower()}
        try:
            event = Event(
                self._clock.now(), EventKind.CALLBACK_REFUSED, telegram_actor(user_id), bot_id, Outcome.REFUSED, details
            )
            self._events.record(event)
        except Exception as error:
            logger.warning("refused callback not recorded", extra={"error": type(error).__name__})

    def _run_action(self, ctx: Ctx, action: CallbackAction, bot_id: str, page: int = 0) -> HandleOutcome:
        if action is CallbackAction.LIST:
            return self._list(ctx)
        if action is CallbackAction.LIST_PAGE:
            return self._list(ctx, page)
        if action is CallbackAction.CANCEL:
            self._conversations.clear(ctx.chat_id, ctx.user_id)
            self._say(ctx, "mgr_cancelled")
            return HandleOutcome("manager:cancelled", replied=True)
        if action is CallbackAction.DETAILS:
            return self._details(ctx, bot_id)
        if action is CallbackAction.STATS:
            return self._stats(ctx, bot_id)
        if action is CallbackAction.EXPORT_SUBSCRIBERS:
            return self._export_subscribers(ctx, bot_id)
        if action in (CallbackAction.DISABLE, CallbackAction.ENABLE):
            enabled = action is CallbackAction.ENABLE
            bot = self._admin_call(ctx, bot_id, lambda: self._admin.set_enabled(ctx.user_id, bot_id, enabled))
            if bot is not None:
                self._say(ctx, "mgr_enabled" if enabled else "mgr_disabled", username=bot.username)
            return HandleOutcome(f"manager:{action.name.lower()}", replied=True)
        if action is CallbackAction.ROTATE:
            bot = self._admin_call(ctx, bot_id, lambda: self._admin.rotate_secret(ctx.user_id, bot_id))
            if bot is not None:
                self._say(ctx, "mgr_rotated", username=bot.username)
            return HandleOutcome("manager:rotate", replied=True)
        if action is CallbackAction.DELETE_ASK:
            return self._ask_delete(ctx, bot_id)
        if action is CallbackAction.INVITE:
            return self._invite(ctx, bot_id)
        if action is CallbackAction.ADMINS:
            return self._admins(ctx, bot_id)
        if action is CallbackAction.REVOKE_ADMIN:
            return self._revoke_admin(ctx, bot_id)
        if action is CallbackAction.REVOKE_INVITE:
            return self._revoke_invite(ctx, bot_id)
        if action is CallbackAction.DELETE_DO:
            bot = self._admin_call(ctx, bot_id, lambda: self._admin.delete(ctx.user_id, bot_id))
            if bot is not None:
                self._say(ctx, "mgr_deleted", username=bot.username)
            return HandleOutcome("manager:delete", replied=True)
        prompts = {
            CallbackAction.SET_WELCOME: (AWAIT_WELCOME, "mgr_ask_welcome"),
            CallbackAction.ADD_COMMAND: (AWAIT_COMMAND, "mgr_ask_command"),
            CallbackAction.ADD_API_COMMAND: (AWAIT_API, "mgr_ask_api"),
        }
        if action in prompts:
            state, key = prompts[action]
            found = self._details_or_say(ctx, bot_id)
            if isinstance(found, HandleOutcome):
                return found
            bot, _ = found
            self._conversations.set(ctx.chat_id, ctx.user_id, state + bot.id, self._config.conversation_ttl_seconds)
            self._say(ctx, key, username=bot.username)
            return HandleOutcome(f"manager:{state.rstrip(':')}", replied=True)
        self._say(ctx, "callback_invalid")
        return HandleOutcome("manager:callback_unknown", replied=True)
