"""ManagerBot: what the manager bot answers. Admins register and run their bots by chatting with it.

Never holds a token: token-shaped text arrives sealed by the gateway and goes, still sealed, to the registry.
Every reply comes from the catalogue (HTML parse mode, user text escaped, link previews off). Ids in
buttons and arguments are claims only: the registry re-checks that the bot is the actor's.
"""

from __future__ import annotations

import base64
import binascii
import csv
import html
import io
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TypeVar

from libs.domain.bot_roles import INVITE_CODE_SHAPE, BotAction, BotRole, may
from libs.domain.bots import ApiCommand, Bot, BotStatus, RateRule
from libs.domain.broadcast import (
    MAX_BROADCAST_CHARS,
    Broadcast,
    BroadcastScheduler,
    BroadcastState,
    BroadcastStore,
    StartResult,
    html_from_entities,
    progress_text,
)
from libs.domain.callback_tokens import CallbackAction, CallbackClaim, CallbackTokens
from libs.domain.clock import SystemClock
from libs.domain.errors import (
    ActionNotPermitted,
    BotNotFound,
    BotOwnedByAnotherAdmin,
    DomainError,
    IllegalTransition,
    InvalidToken,
    TelegramRequestFailed,
    TokenRejected,
)
from libs.domain.events import Event, EventKind, EventRecorder, Outcome, telegram_actor
from libs.domain.inbox import InboxLinks, inbox_recipients
from libs.domain.manager_ports import (
    AdminSessions,
    BlockUser,
    BotAdmin,
    BotStats,
    ConversationStore,
    Registration,
    RemoveCommand,
    SetApiCommand,
    SetCaptchaMode,
    SetCommand,
    SetInboxMode,
    SetMaintenance,
    SettingsChange,
    SetWelcome,
    Subscriber,
    UnblockUser,
    UsedButtons,
)
from libs.domain.messages import render
from libs.domain.ports import Clock, Outbox
from libs.domain.redaction import TOKEN_SHAPED
from libs.domain.sealing import placeholders_in
from libs.domain.telegram_update import TelegramUpdate, TelegramUser, UpdateKind
from libs.domain.updates import UpdateEnvelope
from libs.domain.use_cases.broadcast import cancel_markup
from libs.domain.use_cases.handle_update import HandleOutcome
from libs.domain.use_cases.manager_admin import SETTING_REASON_CODES, InvalidSetting, parse_duration
from libs.domain.use_cases.manager_limits import describe_limits, parse_limits

logger = logging.getLogger(__name__)
_R = TypeVar("_R")

AWAIT_TOKEN = "await_token"  # noqa: S105 - a state name
AWAIT_WELCOME = "await_welcome:"
AWAIT_COMMAND = "await_command:"
AWAIT_API = "await_api:"
AWAIT_BROADCAST = "await_broadcast:"
BROADCAST_CANCEL_WORDS = frozenset({"cancel", "cancelar"})
_PARSE_MODE = "HTML"
MANAGED_BOT_REQUEST_ID = 1
BOTS_PER_PAGE = 8
MAX_PAGES = 1000
_USAGE_KEYS = {
    "/setwelcome": "usage_setwelcome",
    "/setcommand": "usage_setcommand",
    "/setapi": "usage_setapi",
    "/delcommand": "usage_delcommand",
    "/maintenance": "usage_maintenance",
    "/block": "usage_block",
    "/unblock": "usage_unblock",
    "/limits": "usage_limits",
    "/captcha": "usage_captcha",
    "/subscribers": "usage_subscribers",
    "/broadcast": "usage_broadcast",
    "/inbox": "usage_inbox",
    "/invite": "usage_invite",
    "/join": "usage_join",
    "/admins": "usage_admins",
    "/leave": "usage_leave",
}
DEFAULT_BLOCK = "1h"
MAINTENANCE_OFF = frozenset({"off", "desligar"})
INBOX_ON = ("on", "ligar")
INBOX_OFF = ("off", "desligar")
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
BROADCAST_ACTIONS = frozenset({CallbackAction.BROADCAST_CONFIRM, CallbackAction.BROADCAST_CANCEL})
MANAGER_COMMANDS = frozenset(
    {
        "/start",
        "/help",
        "/cancel",
        "/addbot",
        "/newbot",
        "/mybots",
        "/setwelcome",
        "/setcommand",
        "/setapi",
        "/delcommand",
        "/maintenance",
        "/block",
        "/unblock",
        "/limits",
        "/captcha",
        "/subscribers",
        "/broadcast",
        "/inbox",
        "/invite",
        "/join",
        "/admins",
        "/leave",
    }
)
# Invite codes are unguessable (192 bits); still, each user gets a bounded number of redeem attempts: the inbound guard
# limits these manager-bot actions per user (/start carries a code from the invite link). The manager bot's own limits
# set in the registry, if any, come first.
REDEEM_RATE_LIMITS = {"cmd:/join": RateRule(10, 600.0), "cmd:/start": RateRule(10, 600.0)}
# How an invite's expiry is shown (UTC).
EXPIRY_FORMAT = "%Y-%m-%d %H:%M"
MAX_NAME_CHARS = 64


# The CSV export: pages of this many from the registry, and at most this many rows (its bytes travel the outbox).
EXPORT_PAGE = 1000
MAX_EXPORT_ROWS = 50_000
SUBSCRIBER_CSV_COLUMNS = ("telegram_user_id", "first_seen", "last_seen", "status")


def subscribers_csv(rows: Sequence[Subscriber]) -> bytes:
    """UTF-8 CSV with a header; times in ISO 8601 UTC. Only ids, times and statuses: nothing secret."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SUBSCRIBER_CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            (
                row.telegram_user_id,
                row.first_seen.astimezone(UTC).isoformat(timespec="seconds"),
                row.last_seen.astimezone(UTC).isoformat(timespec="seconds"),
                row.status.value,
            )
        )
    return buffer.getvalue().encode("utf-8")


@dataclass(frozen=True)
class ManagerConfig:
    allowed_admin_ids: frozenset[int] = frozenset()
    session_ttl_seconds: int = 1800
    conversation_ttl_seconds: int = 600


@dataclass(frozen=True)
class _Ctx:
    manager_id: str
    chat_id: int
    user_id: int
    lang: str | None


def _split_command(text: str) -> tuple[str | None, str]:
    """'/addbot@Mgr  x y' → ('/addbot', 'x y'); not a command → (None, text)."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None, stripped
    head, _, rest = stripped.partition(" ")
    return head.partition("@")[0].lower(), rest.strip()


def _bot_ref(claim: CallbackClaim) -> str | None:
    """The bot a button names, for the event trail (a broadcast's buttons carry the broadcast's id instead)."""
    return None if claim.action in BROADCAST_ACTIONS else claim.bot_id


class ManagerBot:
    def __init__(
        self,
        admin: BotAdmin,
        outbox: Outbox,
        tokens: CallbackTokens,
        conversations: ConversationStore,
        sessions: AdminSessions,
        config: ManagerConfig,
        used_buttons: UsedButtons | None = None,
        events: EventRecorder | None = None,
        clock: Clock | None = None,
        broadcasts: BroadcastStore | None = None,
        broadcast_scheduler: BroadcastScheduler | None = None,
        inbox_links: InboxLinks | None = None,
    ) -> None:
        self._inbox_links = inbox_links
        self._admin = admin
        self._broadcasts = broadcasts
        self._broadcast_scheduler = broadcast_scheduler
        self._events = events
        self._clock = clock or SystemClock()
        self._outbox = outbox
        self._tokens = tokens
        self._conversations = conversations
        self._sessions = sessions
        self._config = config
        self._used_buttons = used_buttons

    # -- entry -----------------------------------------------------------------------------------------

    def __call__(self, envelope: UpdateEnvelope) -> HandleOutcome:
        view = envelope.view  # libs/domain/telegram_update.py: the one reader of the update's shape
        if view.kind is UpdateKind.MANAGED_BOT:
            return self._managed_bot(envelope, view)
        if view.kind is UpdateKind.CALLBACK_QUERY:
            return self._callback(envelope, view)
        message = envelope.message
        if message is None:
            return HandleOutcome("manager:ignored")
        return self._message(envelope, message)

    def _allowed(self, user_id: int) -> bool:
        allowed = self._config.allowed_admin_ids
        return not allowed or user_id in allowed

    # -- output ----------------------------------------------------------------------------------------

    def _say(self, ctx: _Ctx, key: str, markup: dict[str, Any] | None = None, **values: object) -> None:
        escaped = {name: html.escape(str(value), quote=False) for name, value in values.items()}
        self._out(ctx, render(key, ctx.lang, **escaped), markup)

    def _out(self, ctx: _Ctx, text: str, markup: dict[str, Any] | None = None) -> None:
        """Sends catalogue text already rendered (values escaped); HTML, no link previews."""
        self._outbox.send_message(
            ctx.manager_id,
            ctx.chat_id,
            text,
            parse_mode=_PARSE_MODE,
            reply_markup=markup,
            disable_web_page_preview=True,
        )

    def _button(
        self, ctx: _Ctx, key: str, action: CallbackAction, bot_id: str | None, **values: object
    ) -> dict[str, str]:
        return {
            "text": render(key, ctx.lang, **values),
            "callback_data": self._tokens.sign(action, bot_id, ctx.user_id, ctx.chat_id),
        }

    def _delete(self, ctx: _Ctx, message_id: object) -> None:
        """Deletes a message that held (or may have held) a token; when Telegram refuses, the admin is told to
        delete it and revoke the token."""
        deleted = False
        if isinstance(message_id, int):
            try:
                # A queued outbox learns of a refusal only when it sends: it then posts this text itself.
                notice = render("mgr_delete_token_yourself", ctx.lang)
                self._outbox.delete_message(ctx.manager_id, ctx.chat_id, message_id, if_refused_text=notice)
                deleted = True
            except TelegramRequestFailed:
                logger.info("could not delete a message", extra={"chat_id": ctx.chat_id})
        if not deleted:
            self._say(ctx, "mgr_delete_token_yourself")

    def _status(self, ctx: _Ctx, status: BotStatus) -> str:
        return render(f"status_{status.value}", ctx.lang)

    # -- messages --------------------------------------------------------------------------------------

    def _message(self, envelope: UpdateEnvelope, message: dict[str, Any]) -> HandleOutcome:
        view = envelope.view
        sender, chat_id = view.sender, view.chat_id
        if sender is None or chat_id is None:
            return HandleOutcome("manager:ignored")
        if "managed_bot_created" in message:
            # Telegram's service message; the `managed_bot` update that comes with it registers the bot.
            return HandleOutcome("manager:managed_bot_created")
        ctx = _Ctx(envelope.bot_id, chat_id, sender.id, sender.language_code)
        text = envelope.text or ""
        if envelope.sealed_texts:
            # A token came in: the message goes away before anything else happens.
            self._delete(ctx, view.message_id)
        if view.chat_type != "private":
            return HandleOutcome("manager:ignored_not_private")
        command, arg = _split_command(text)
        state = self._conversations.get(ctx.chat_id, ctx.user_id)
        if command == "/start" and INVITE_CODE_SHAPE.fullmatch(arg):
            command = "/join"  # the invite link: https://t.me/<manager>?start=<code>; other /start payloads: help
        if command in ("/start", "/help"):
            self._conversations.clear(ctx.chat_id, ctx.user_id)
            self._say(ctx, "mgr_help", markup=self._create_bot_keyboard(ctx))
            return HandleOutcome(f"manager:{command}", replied=True)
        if command == "/cancel":
            self._conversations.clear(ctx.chat_id, ctx.user_id)
            self._say(ctx, "mgr_cancelled", markup={"remove_keyboard": True})
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
            self._say(ctx, "mgr_new_bot", markup=self._create_bot_keyboard(ctx))
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

    def _create_bot_keyboard(self, ctx: _Ctx) -> dict[str, Any]:
        button = {
            "text": render("btn_create_bot", ctx.lang),
            "request_managed_bot": {"request_id": MANAGED_BOT_REQUEST_ID},
        }
        return {"keyboard": [[button]], "resize_keyboard": True, "one_time_keyboard": True}

    # -- registration ----------------------------------------------------------------------------------

    def _register_from(self, ctx: _Ctx, text: str, sealed_texts: tuple[str, ...]) -> HandleOutcome:
        indexes = [i for i in placeholders_in(text) if i < len(sealed_texts)]
        if not indexes or TOKEN_SHAPED.search(text):
            self._say(ctx, "mgr_invalid_token")
            return HandleOutcome("manager:invalid_token", replied=True)
        try:
            ciphertext = base64.b64decode(sealed_texts[indexes[0]], validate=True)
        except (binascii.Error, ValueError):
            self._say(ctx, "mgr_invalid_token")
            return HandleOutcome("manager:invalid_token", replied=True)
        return self._registered(
            ctx, lambda: self._admin.register_sealed(ctx.user_id, ciphertext, ctx.manager_id, ctx.chat_id)
        )

    def _registered(self, ctx: _Ctx, register: Callable[[], Registration]) -> HandleOutcome:
        try:
            registration = register()
        except InvalidToken:
            self._say(ctx, "mgr_invalid_token")
            return HandleOutcome("manager:invalid_token", replied=True)
        except TokenRejected:
            self._say(ctx, "mgr_token_rejected")
            return HandleOutcome("manager:token_rejected", replied=True)
        except BotOwnedByAnotherAdmin:
            self._say(ctx, "mgr_owned_by_other")
            return HandleOutcome("manager:owned_by_other", replied=True)
        except DomainError as error:
            logger.warning("registration failed", extra={"error": type(error).__name__})
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        bot = registration.bot
        self._say(ctx, "secret_saved", markup={"remove_keyboard": True})
        self._say(ctx, "mgr_refreshed" if registration.refreshed else "mgr_registered", username=bot.username)
        return HandleOutcome("manager:registered", replied=True)

    def _managed_bot(self, envelope: UpdateEnvelope, view: TelegramUpdate) -> HandleOutcome:
        if view.sender is None or view.managed_bot is None:
            return HandleOutcome("manager:ignored")
        user_id, bot_user_id, lang = view.sender.id, view.managed_bot.id, view.sender.language_code
        ctx = _Ctx(envelope.bot_id, user_id, user_id, lang)  # the creator's private chat with the manager bot
        if not self._allowed(user_id):
            self._say(ctx, "mgr_not_allowed")
            return HandleOutcome("manager:not_allowed", replied=True)
        self._sessions.touch(user_id, self._config.session_ttl_seconds)
        return self._registered(ctx, lambda: self._admin.register_managed(user_id, bot_user_id))

    # -- /mybots and details ---------------------------------------------------------------------------

    def _admin_call(self, ctx: _Ctx, bot_id: str, call: Callable[[], Bot]) -> Bot | None:
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

    def _say_invalid_setting(self, ctx: _Ctx, error: InvalidSetting) -> None:
        code = error.code if error.code in SETTING_REASON_CODES else "invalid"
        self._out(ctx, render("mgr_invalid_setting", ctx.lang, reason=render(f"setting_{code}", ctx.lang)))

    def _details_or_say(self, ctx: _Ctx, bot_id: str) -> tuple[Bot, BotStats] | HandleOutcome:
        """The actor's bot and its stats, or the outcome after telling them it is not found / unavailable."""
        try:
            return self._admin.details(ctx.user_id, bot_id)
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)

    def _say_illegal(self, ctx: _Ctx, bot_id: str) -> None:
        try:
            bot, _ = self._admin.details(ctx.user_id, bot_id)
        except DomainError:
            self._say(ctx, "callback_invalid")
            return
        self._say(ctx, "mgr_illegal_move", username=bot.username, status=self._status(ctx, bot.status))

    def _list(self, ctx: _Ctx, page: int = 0) -> HandleOutcome:
        try:
            bots = self._admin.list_bots(ctx.user_id)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        if not bots:
            self._say(ctx, "mgr_no_bots")
            return HandleOutcome("manager:/mybots", replied=True)
        pages = min(MAX_PAGES, -(-len(bots) // BOTS_PER_PAGE))
        page = max(0, min(page, pages - 1))
        shown = bots[page * BOTS_PER_PAGE : (page + 1) * BOTS_PER_PAGE]
        lines = [render("mgr_bots_header", ctx.lang)]
        rows: list[list[dict[str, str]]] = []
        for bot in shown:
            lines.append(
                render(
                    "mgr_bot_line" if self._role(ctx, bot) is BotRole.OWNER else "mgr_bot_line_admin",
                    ctx.lang,
                    username=html.escape(bot.username, quote=False),
                    status=self._status(ctx, bot.status),
                )
            )
            rows.append(
                [
                    self._button(ctx, "btn_details", CallbackAction.DETAILS, bot.id, username=bot.username),
                    self._button(ctx, "btn_stats", CallbackAction.STATS, bot.id),
                ]
            )
            rows.append(self._state_buttons(ctx, bot))
        if pages > 1:
            lines.append(render("mgr_page", ctx.lang, page=page + 1, pages=pages))
            nav = []
            if page > 0:
                nav.append(self._page_button(ctx, "btn_prev_page", page - 1))
            if page < pages - 1:
                nav.append(self._page_button(ctx, "btn_next_page", page + 1))
            rows.append(nav)
        self._out(ctx, "\n".join(lines), {"inline_keyboard": rows})
        return HandleOutcome("manager:/mybots", replied=True)

    def _page_button(self, ctx: _Ctx, key: str, page: int) -> dict[str, str]:
        return {
            "text": render(key, ctx.lang),
            "callback_data": self._tokens.sign(CallbackAction.LIST_PAGE, None, ctx.user_id, ctx.chat_id, page=page),
        }

    @staticmethod
    def _role(ctx: _Ctx, bot: Bot) -> BotRole:
        """The actor's role on a bot the registry listed for them: theirs when they own it, else administered.
        Only chooses which buttons to show; the registry decides what a press may do."""
        return BotRole.OWNER if bot.owner_id == ctx.user_id else BotRole.ADMIN

    def _state_buttons(self, ctx: _Ctx, bot: Bot) -> list[dict[str, str]]:
        toggle = (
            self._button(ctx, "btn_enable", CallbackAction.ENABLE, bot.id)
            if bot.status is BotStatus.DISABLED
            else self._button(ctx, "btn_disable", CallbackAction.DISABLE, bot.id)
        )
        role = self._role(ctx, bot)
        buttons = [toggle]
        if may(role, BotAction.ROTATE_SECRET):
            buttons.append(self._button(ctx, "btn_rotate", CallbackAction.ROTATE, bot.id))
        if may(role, BotAction.DELETE):
            buttons.append(self._button(ctx, "btn_delete", CallbackAction.DELETE_ASK, bot.id))
        return buttons

    def _details(self, ctx: _Ctx, bot_id: str) -> HandleOutcome:
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, _stats = found
        commands = sorted({*bot.settings.custom_commands, *bot.settings.api_commands})
        markup = {
            "inline_keyboard": [
                self._state_buttons(ctx, bot),
                [
                    self._button(ctx, "btn_stats", CallbackAction.STATS, bot.id),
                    self._button(ctx, "btn_welcome", CallbackAction.SET_WELCOME, bot.id),
                ],
                [
                    self._button(ctx, "btn_command", CallbackAction.ADD_COMMAND, bot.id),
                    self._button(ctx, "btn_api", CallbackAction.ADD_API_COMMAND, bot.id),
                ],
            ]
        }
        if may(self._role(ctx, bot), BotAction.MANAGE_ADMINS):
            markup["inline_keyboard"].append(
                [
                    self._button(ctx, "btn_invite", CallbackAction.INVITE, bot.id),
                    self._button(ctx, "btn_admins", CallbackAction.ADMINS, bot.id),
                ]
            )
        self._say(
            ctx,
            "mgr_details",
            markup=markup,
            username=bot.username,
            status=render(f"status_{bot.status.value}", ctx.lang),
            welcome=bot.settings.welcome_text[:200] or render("mgr_default_welcome", ctx.lang),
            commands=", ".join(commands) or render("mgr_none", ctx.lang),
        )
        return HandleOutcome("manager:details", replied=True)

    def _stats(self, ctx: _Ctx, bot_id: str) -> HandleOutcome:
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, stats = found
        self._say(
            ctx,
            "mgr_stats",
            username=bot.username,
            users_total=stats.users_total,
            users_today=stats.users_today,
            messages_today=stats.messages_today,
        )
        return HandleOutcome("manager:stats", replied=True)

    # -- buttons ---------------------------------------------------------------------------------------

    def _callback(self, envelope: UpdateEnvelope, view: TelegramUpdate) -> HandleOutcome:
        sender, query_id = view.sender, view.callback_id
        if sender is None or query_id is None:
            return HandleOutcome("manager:ignored")
        lang, chat_id, data = sender.language_code, view.chat_id, view.callback_data
        claim = self._tokens.verify(data, sender.id, chat_id) if data is not None and chat_id is not None else None
        if claim is None or chat_id is None:
            self._outbox.answer_callback_query(envelope.bot_id, query_id, render("callback_invalid", lang))
            # Tampered, expired, another user's or another chat's button: one reason, as the user is told.
            self._callback_refused(sender.id, None, "invalid")
            return HandleOutcome("manager:callback_invalid")
        ctx = _Ctx(envelope.bot_id, chat_id, sender.id, lang)
        if not self._allowed(ctx.user_id):
            self._outbox.answer_callback_query(ctx.manager_id, query_id, render("mgr_not_allowed", lang))
            self._callback_refused(ctx.user_id, _bot_ref(claim), "not_allowed", claim.action)
            return HandleOutcome("manager:not_allowed")
        if (
            claim.action in ONE_TIME_ACTIONS
            and self._used_buttons is not None
            and not self._used_buttons.use_once(claim.token_id, self._tokens.ttl_seconds)
        ):
            # Pressed before (a replay, or a double tap): a destructive button acts once; the re-confirmation
            # before rotate/delete would otherwise be replayable for the token's whole lifetime.
            self._outbox.answer_callback_query(ctx.manager_id, query_id, render("callback_invalid", lang))
            self._callback_refused(ctx.user_id, _bot_ref(claim), "replayed", claim.action)
            return HandleOutcome("manager:callback_used")
        fresh = self._sessions.is_fresh(ctx.user_id)
        self._outbox.answer_callback_query(ctx.manager_id, query_id)
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

    def _ask_reauth(self, ctx: _Ctx, action: CallbackAction, bot_id: str) -> HandleOutcome:
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, _ = found
        rotate = action is CallbackAction.ROTATE
        reauth = CallbackAction.REAUTH_ROTATE if rotate else CallbackAction.REAUTH_DELETE
        label = render("action_rotate" if rotate else "action_delete", ctx.lang, username=bot.username)
        markup = {
            "inline_keyboard": [
                [
                    self._button(ctx, "btn_confirm_identity", reauth, bot.id),
                    self._button(ctx, "btn_cancel", CallbackAction.CANCEL, None),
                ]
            ]
        }
        self._say(ctx, "mgr_session_expired", markup=markup, action=label)
        return HandleOutcome("manager:reauth", replied=True)

    def _run_action(self, ctx: _Ctx, action: CallbackAction, bot_id: str, page: int = 0) -> HandleOutcome:
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

    def _ask_delete(self, ctx: _Ctx, bot_id: str) -> HandleOutcome:
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, _ = found
        markup = {
            "inline_keyboard": [
                [
                    self._button(ctx, "btn_confirm_delete", CallbackAction.DELETE_DO, bot.id),
                    self._button(ctx, "btn_cancel", CallbackAction.CANCEL, None),
                ]
            ]
        }
        self._say(ctx, "mgr_delete_confirm", markup=markup, username=bot.username)
        return HandleOutcome("manager:delete_ask", replied=True)

    # -- configuration ---------------------------------------------------------------------------------

    def _resolve(self, ctx: _Ctx, ref: str) -> str | None:
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

    def _configure_command(self, ctx: _Ctx, command: str, arg: str) -> HandleOutcome:
        ref, _, rest = arg.partition(" ")
        rest = rest.strip()
        if not ref or not rest:
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS[command], ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        if command == "/maintenance":
            off = rest.lower() in MAINTENANCE_OFF
            return self._apply(ctx, bot_id, SetMaintenance("" if off else rest), None)
        if command in ("/block", "/unblock"):
            return self._block_command(ctx, command, bot_id, rest)
        kind = {"/setwelcome": AWAIT_WELCOME, "/setcommand": AWAIT_COMMAND, "/setapi": AWAIT_API}.get(command)
        if kind is None:
            return self._apply(ctx, bot_id, RemoveCommand(rest.split()[0]), rest.split()[0])
        return self._configure_answer(ctx, kind, bot_id, rest)

    def _configure_answer(self, ctx: _Ctx, kind: str, bot_id: str, text: str) -> HandleOutcome:
        if kind == AWAIT_WELCOME:
            return self._apply(ctx, bot_id, SetWelcome(text), None)
        name, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if not name or not rest:
            usage_key = "usage_command_answer" if kind == AWAIT_COMMAND else "usage_api_answer"
            self._say(ctx, "mgr_usage", usage=render(usage_key, ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        if kind == AWAIT_COMMAND:
            return self._apply(ctx, bot_id, SetCommand(name, rest), name)
        parts = rest.split()
        method = parts[1].upper() if len(parts) > 1 else "GET"
        try:
            timeout = float(parts[2]) if len(parts) > 2 else 5.0
        except ValueError:
            timeout = -1.0  # refused by the registry with a clear reason
        change = SetApiCommand(name, ApiCommand(url=parts[0], method=method, timeout_seconds=timeout))
        return self._apply(ctx, bot_id, change, name)

    def _block_command(self, ctx: _Ctx, command: str, bot_id: str, rest: str) -> HandleOutcome:
        words = rest.split()
        duration = (words[1] if len(words) > 1 else DEFAULT_BLOCK).lower()
        seconds = parse_duration(duration)
        if not words[0].isdigit() or len(words) > 2 or (command == "/block" and seconds is None):
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS[command], ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        user_id = int(words[0])
        change: SettingsChange
        if command == "/unblock":
            change = UnblockUser(user_id)
        else:
            assert seconds is not None
            change = BlockUser(user_id, seconds)
        bot = self._admin_call(ctx, bot_id, lambda: self._admin.update_settings(ctx.user_id, bot_id, change))
        if bot is None:
            return HandleOutcome("manager:settings_refused", replied=True)
        if command == "/unblock":
            self._say(ctx, "mgr_user_unblocked", username=bot.username, user_id=user_id)
        else:
            self._say(ctx, "mgr_user_blocked", username=bot.username, user_id=user_id, duration=duration)
        return HandleOutcome(f"manager:{command[1:]}", replied=True)

    def _limits_command(self, ctx: _Ctx, arg: str) -> HandleOutcome:
        ref, _, rest = arg.strip().partition(" ")
        changes = parse_limits(rest)
        if not ref or changes is None:
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS["/limits"], ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        bot = self._bot_after(ctx, bot_id, changes)
        if isinstance(bot, HandleOutcome):
            return bot
        self._out(ctx, describe_limits(bot.username, bot.settings, ctx.lang))
        return HandleOutcome("manager:limits" if not changes else "manager:limits_set", replied=True)

    def _captcha_command(self, ctx: _Ctx, arg: str) -> HandleOutcome:
        ref, _, mode = arg.strip().partition(" ")
        mode = mode.strip().lower()
        if not ref or len(mode.split()) > 1:
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS["/captcha"], ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        bot = self._bot_after(ctx, bot_id, (SetCaptchaMode(mode),) if mode else ())
        if isinstance(bot, HandleOutcome):
            return bot
        shown = render(f"captcha_mode_{bot.settings.captcha_mode.value}", ctx.lang)
        self._say(ctx, "mgr_captcha", username=bot.username, mode=shown)
        return HandleOutcome("manager:captcha", replied=True)

    def _inbox_command(self, ctx: _Ctx, arg: str) -> HandleOutcome:
        """/inbox @bot on|off (no mode: as it is). Switched on, it warns each admin the bot cannot write to yet."""
        ref, _, mode = arg.strip().partition(" ")
        mode = mode.strip().lower()
        if not ref or mode not in ("", *INBOX_ON, *INBOX_OFF):
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS["/inbox"], ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        bot = self._bot_after(ctx, bot_id, (SetInboxMode(mode in INBOX_ON),) if mode else ())
        if isinstance(bot, HandleOutcome):
            return bot
        self._say(ctx, "mgr_inbox_on" if bot.settings.inbox_enabled else "mgr_inbox_off", username=bot.username)
        if bot.settings.inbox_enabled and self._inbox_links is not None:
            links = self._inbox_links
            if any(not links.reachable(bot.id, admin_id) for admin_id in inbox_recipients(bot)):
                self._say(ctx, "mgr_inbox_unreachable", username=bot.username)
        return HandleOutcome("manager:inbox", replied=True)

    def _subscribers_command(self, ctx: _Ctx, arg: str) -> HandleOutcome:
        words = arg.split()
        if len(words) != 1:
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS["/subscribers"], ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        bot_id = self._resolve_or_say(ctx, words[0])
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        try:
            bot, stats = self._admin.subscriber_stats(ctx.user_id, bot_id)
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        export = self._button(ctx, "btn_export_csv", CallbackAction.EXPORT_SUBSCRIBERS, bot.id)
        self._say(
            ctx,
            "mgr_subscribers",
            markup={"inline_keyboard": [[export]]},
            username=bot.username,
            total=stats.total,
            active=stats.active,
            blocked_bot=stats.blocked_bot,
            blocked_by_admin=stats.blocked_by_admin,
            new_today=stats.new_today,
            new_7_days=stats.new_7_days,
        )
        return HandleOutcome("manager:subscribers", replied=True)

    def _export_subscribers(self, ctx: _Ctx, bot_id: str) -> HandleOutcome:
        """The bot's subscribers as a CSV document, paged from the registry (which re-checks ownership)."""
        found = self._details_or_say(ctx, bot_id)
        if isinstance(found, HandleOutcome):
            return found
        bot, _ = found
        rows: list[Subscriber] = []
        try:
            while len(rows) <= MAX_EXPORT_ROWS:  # one page past the limit tells whether there are more
                after = rows[-1].telegram_user_id if rows else 0
                page = self._admin.list_subscribers(ctx.user_id, bot.id, after, EXPORT_PAGE)
                rows += page
                if len(page) < EXPORT_PAGE:
                    break
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        if not rows:
            self._say(ctx, "mgr_no_subscribers", username=bot.username)
            return HandleOutcome("manager:export_subscribers", replied=True)
        truncated = len(rows) > MAX_EXPORT_ROWS
        rows = rows[:MAX_EXPORT_ROWS]
        caption = render(
            "mgr_subscribers_csv_truncated" if truncated else "mgr_subscribers_csv",
            ctx.lang,
            username=bot.username,
            count=len(rows),
        )
        self._outbox.send_document(
            ctx.manager_id,
            ctx.chat_id,
            f"subscribers-{bot.username}.csv",
            subscribers_csv(rows),
            mime_type="text/csv",
            caption=caption,
        )
        return HandleOutcome("manager:export_subscribers", replied=True)

    def _resolve_or_say(self, ctx: _Ctx, ref: str) -> str | HandleOutcome:
        """The bot id `ref` names among the actor's bots, or the outcome after saying why there is none."""
        bot_id = self._resolve(ctx, ref)
        if bot_id is None:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        if not bot_id:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        return bot_id

    def _bot_after(self, ctx: _Ctx, bot_id: str, changes: Sequence[SettingsChange]) -> Bot | HandleOutcome:
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

    def _apply(self, ctx: _Ctx, bot_id: str, change: SettingsChange, command: str | None) -> HandleOutcome:
        bot = self._admin_call(ctx, bot_id, lambda: self._admin.update_settings(ctx.user_id, bot_id, change))
        if bot is None:
            return HandleOutcome("manager:settings_refused", replied=True)
        if isinstance(change, SetWelcome):
            self._say(ctx, "mgr_welcome_set", username=bot.username)
        elif isinstance(change, SetMaintenance):
            self._say(ctx, "mgr_maintenance_on" if change.text else "mgr_maintenance_off", username=bot.username)
        elif isinstance(change, RemoveCommand):
            self._say(ctx, "mgr_command_removed", username=bot.username, command=(command or "").lower())
        else:
            self._say(ctx, "mgr_command_set", username=bot.username, command=(command or "").lower())
        return HandleOutcome("manager:settings", replied=True)

    # -- /broadcast (issue 15) -------------------------------------------------------------------------

    def _broadcast_target(self, ctx: _Ctx, ref: str) -> tuple[Bot, int] | HandleOutcome:
        """The actor's bot named by `ref` and its active subscribers, through the same registry check as
        /subscribers (a bot that is not the actor's is "not found"), or the outcome after saying why not."""
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        try:
            bot, stats = self._admin.subscriber_stats(ctx.user_id, bot_id)
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        return bot, stats.active

    def _broadcast_command(self, ctx: _Ctx, arg: str) -> HandleOutcome:
        words = arg.split()
        stopping = len(words) == 2 and words[0].lower() in BROADCAST_CANCEL_WORDS
        if self._broadcasts is None or not (len(words) == 1 or stopping):
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS["/broadcast"], ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        target = self._broadcast_target(ctx, words[-1])
        if isinstance(target, HandleOutcome):
            return target
        bot, active = target
        running = self._broadcasts.running_for(bot.id)
        if stopping:
            if running is None or not self._broadcasts.request_cancel(running, self._clock.now().timestamp()):
                self._say(ctx, "mgr_broadcast_none_running", username=bot.username)
                return HandleOutcome("manager:broadcast_none", replied=True)
            self._say(ctx, "mgr_broadcast_stopping", username=bot.username)
            return HandleOutcome("manager:broadcast_cancel", replied=True)
        if running is not None:
            self._say(ctx, "mgr_broadcast_busy", username=bot.username)
            return HandleOutcome("manager:broadcast_busy", replied=True)
        if active <= 0:
            self._say(ctx, "mgr_broadcast_no_subscribers", username=bot.username)
            return HandleOutcome("manager:broadcast_nobody", replied=True)
        state = AWAIT_BROADCAST + bot.id
        self._conversations.set(ctx.chat_id, ctx.user_id, state, self._config.conversation_ttl_seconds)
        self._say(ctx, "mgr_broadcast_ask", username=bot.username, active=active)
        return HandleOutcome("manager:await_broadcast", replied=True)

    def _broadcast_draft(self, ctx: _Ctx, bot_id: str, message: dict[str, Any]) -> HandleOutcome:
        """The admin's message: stored as a draft, shown as the subscribers will see it, with signed buttons."""
        text = message.get("text")
        if self._broadcasts is None or not isinstance(text, str) or not text.strip():
            self._say(ctx, "mgr_broadcast_empty")
            return HandleOutcome("manager:broadcast_empty", replied=True)
        if len(text) > MAX_BROADCAST_CHARS:
            self._say(ctx, "mgr_broadcast_too_long")
            return HandleOutcome("manager:broadcast_too_long", replied=True)
        target = self._broadcast_target(ctx, bot_id)
        if isinstance(target, HandleOutcome):
            return target
        bot, active = target
        draft = Broadcast(
            id=str(uuid.uuid4()),
            bot_id=bot.id,
            admin_id=ctx.user_id,
            chat_id=ctx.chat_id,
            manager_id=ctx.manager_id,
            username=bot.username,
            lang=ctx.lang,
            text=html_from_entities(text, message.get("entities")),
        )
        self._broadcasts.create(draft, self._config.conversation_ttl_seconds)
        self._out(ctx, draft.text)  # the preview: exactly what the subscribers will get
        buttons = [
            self._button(ctx, "btn_broadcast_send", CallbackAction.BROADCAST_CONFIRM, draft.id),
            self._button(ctx, "btn_cancel", CallbackAction.BROADCAST_CANCEL, draft.id),
        ]
        self._say(
            ctx, "mgr_broadcast_preview", markup={"inline_keyboard": [buttons]}, username=bot.username, active=active
        )
        return HandleOutcome("manager:broadcast_preview", replied=True)

    def _broadcast_button(self, ctx: _Ctx, action: CallbackAction, broadcast_id: str, message_id: int) -> HandleOutcome:
        """Confirm (once: a one-time button, and a draft starts once) or cancel a broadcast of the presser's."""
        found = self._broadcasts.get(broadcast_id) if self._broadcasts is not None and broadcast_id else None
        if found is None or found.admin_id != ctx.user_id or found.chat_id != ctx.chat_id:
            self._say(ctx, "mgr_broadcast_gone")
            return HandleOutcome("manager:broadcast_gone", replied=True)
        assert self._broadcasts is not None
        now = self._clock.now().timestamp()
        if action is CallbackAction.BROADCAST_CANCEL:
            if not self._broadcasts.request_cancel(found.id, now):
                self._say(ctx, "mgr_broadcast_gone")
                return HandleOutcome("manager:broadcast_gone", replied=True)
            if found.state is BroadcastState.DRAFT:
                self._say(ctx, "mgr_broadcast_discarded")
                return HandleOutcome("manager:broadcast_discarded", replied=True)
            self._say(ctx, "mgr_broadcast_stopping", username=found.username)
            return HandleOutcome("manager:broadcast_cancel", replied=True)
        if found.state is not BroadcastState.DRAFT or not message_id or self._broadcast_scheduler is None:
            self._say(ctx, "mgr_broadcast_gone")
            return HandleOutcome("manager:broadcast_gone", replied=True)
        target = self._broadcast_target(ctx, found.bot_id)  # still the presser's bot, right now
        if isinstance(target, HandleOutcome):
            return target
        _bot, active = target
        started = self._broadcasts.start(found.id, message_id, active, now)
        if started is not StartResult.STARTED:
            busy = started is StartResult.BUSY
            self._say(ctx, "mgr_broadcast_busy" if busy else "mgr_broadcast_gone", username=found.username)
            return HandleOutcome("manager:broadcast_busy" if busy else "manager:broadcast_gone", replied=True)
        running = self._broadcasts.get(found.id) or found
        self._outbox.edit_message_text(
            ctx.manager_id,
            ctx.chat_id,
            message_id,
            progress_text(running, now),
            parse_mode=_PARSE_MODE,
            reply_markup=cancel_markup(self._tokens, running),
        )
        self._broadcast_scheduler.schedule(found.id)
        return HandleOutcome("manager:broadcast_started", replied=True)

    # -- co-admins (issue 15): /invite, /join (or /start <code>), /admins, /leave ------------------------------

    def _team_command(self, ctx: _Ctx, command: str, arg: str) -> HandleOutcome:
        words = arg.split()
        if len(words) != 1:
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS[command], ctx.lang))
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

    def _team_call(self, ctx: _Ctx, call: Callable[[], _R]) -> _R | None:
        """A co-admin call, or None after telling the actor why not (an invite_* refusal in its own words)."""
        try:
            return call()
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
        except ActionNotPermitted:
            self._say(ctx, "mgr_owner_only")
        except InvalidSetting as error:
            code = error.code if error.code in SETTING_REASON_CODES else "invalid"
            self._out(ctx, render("mgr_team_refused", ctx.lang, reason=render(f"setting_{code}", ctx.lang)))
        except DomainError as error:
            logger.warning("co-admin call failed", extra={"error": type(error).__name__})
            self._say(ctx, "mgr_unavailable")
        return None

    def _invite(self, ctx: _Ctx, bot_id: str) -> HandleOutcome:
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

    def _join(self, ctx: _Ctx, code: str, sender: TelegramUser) -> HandleOutcome:
        if not code or len(code.split()) != 1:
            self._say(ctx, "mgr_usage", usage=render(_USAGE_KEYS["/join"], ctx.lang))
            return HandleOutcome("manager:usage", replied=True)
        bot = self._team_call(ctx, lambda: self._admin.redeem_invite(ctx.user_id, code))
        if bot is None:
            return HandleOutcome("manager:join_refused", replied=True)
        self._say(ctx, "mgr_joined", username=bot.username)
        name = sender.first_name or ""
        owner = _Ctx(ctx.manager_id, bot.owner_id, bot.owner_id, None)  # the owner's private chat, default language
        self._say(owner, "mgr_admin_joined", name=name[:MAX_NAME_CHARS], user_id=ctx.user_id, username=bot.username)
        return HandleOutcome("manager:join", replied=True)

    def _admins(self, ctx: _Ctx, bot_id: str) -> HandleOutcome:
        found = self._team_call(ctx, lambda: self._admin.admins(ctx.user_id, bot_id))
        if found is None:
            return HandleOutcome("manager:admins_refused", replied=True)
        bot, admins, invites = found
        lines = [render("mgr_admins_header", ctx.lang, username=html.escape(bot.username, quote=False))]
        rows: list[list[dict[str, str]]] = []
        for admin in admins:
            since = admin.added_at.astimezone(UTC).strftime(EXPIRY_FORMAT)
            lines.append(render("mgr_admin_line", ctx.lang, user_id=admin.telegram_user_id, since=since))
            rows.append(
                [
                    self._button(
                        ctx, "btn_revoke_admin", CallbackAction.REVOKE_ADMIN, admin.id, user_id=admin.telegram_user_id
                    )
                ]
            )
        if not admins:
            lines.append(render("mgr_no_admins", ctx.lang))
        for invite in invites:
            until = invite.expires_at.astimezone(UTC).strftime(EXPIRY_FORMAT)
            lines.append(render("mgr_invite_line", ctx.lang, expires=until))
            rows.append(
                [self._button(ctx, "btn_revoke_invite", CallbackAction.REVOKE_INVITE, invite.id, expires=until)]
            )
        rows.append([self._button(ctx, "btn_invite", CallbackAction.INVITE, bot.id)])
        self._out(ctx, "\n".join(lines), {"inline_keyboard": rows})
        return HandleOutcome("manager:admins", replied=True)

    def _revoke_admin(self, ctx: _Ctx, membership_id: str) -> HandleOutcome:
        done = self._team_call(ctx, lambda: self._admin.revoke_admin(ctx.user_id, membership_id))
        if done is None:
            return HandleOutcome("manager:revoke_refused", replied=True)
        bot, removed = done
        self._say(ctx, "mgr_admin_revoked", user_id=removed.telegram_user_id, username=bot.username)
        if removed.telegram_user_id != ctx.user_id:
            former = _Ctx(ctx.manager_id, removed.telegram_user_id, removed.telegram_user_id, None)
            self._say(former, "mgr_you_were_revoked", username=bot.username)
        return HandleOutcome("manager:revoke_admin", replied=True)

    def _revoke_invite(self, ctx: _Ctx, invite_id: str) -> HandleOutcome:
        bot = self._team_call(ctx, lambda: self._admin.revoke_invite(ctx.user_id, invite_id))
        if bot is None:
            return HandleOutcome("manager:revoke_refused", replied=True)
        self._say(ctx, "mgr_invite_revoked", username=bot.username)
        return HandleOutcome("manager:revoke_invite", replied=True)
