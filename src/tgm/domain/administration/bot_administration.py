"""The registry's side of the manager bot: every admin operation, checked against the acting admin.

Tenant isolation lives here: a bot on which the actor has no role (src/tgm/domain/bot_roles.py: owner or invited
admin), or the manager bot itself, is `BotNotFound`, exactly like a bot that does not exist, so nobody learns
whether someone else's bot exists. A role that may not do the action (an admin deleting the bot) is
`ActionNotPermitted`. Tokens are opened here only (vault Decrypt, purpose manage), never in the dispatcher.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar
from uuid import uuid4

from tgm.domain.administration.ports import (
    BlockedByUser,
    BlockUser,
    BotStats,
    Registration,
    RemoveCommand,
    ResetLimits,
    SetApiCommand,
    SetCaptchaMode,
    SetCommand,
    SetCooldown,
    SetInboxMode,
    SetMaintenance,
    SetRateLimit,
    SettingsChange,
    SetWelcome,
    Subscriber,
    SubscriberStats,
    SubscriberStatus,
    UnblockUser,
)
from tgm.domain.administration.register_bot import MAX_ATTEMPTS, RegisterBot, RegisterBotCommand, allowed_updates
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
    may,
    new_invite_code,
    role_in,
)
from tgm.domain.bots import (
    ApiCommand,
    Bot,
    BotSettings,
    BotStatus,
    BotToken,
    CaptchaMode,
    RateRule,
    WebhookSecret,
)
from tgm.domain.errors import (
    ActionNotPermitted,
    BotNotFound,
    BotOwnedByAnotherAdmin,
    ConcurrentUpdate,
    DomainError,
    IllegalTransition,
    InvalidToken,
    SecretRejected,
    TokenRejected,
)
from tgm.domain.ports import (
    BotRepository,
    Clock,
    DecryptPurpose,
    SecretKind,
    TelegramApi,
    TokenVault,
    WebhookRegistration,
)
from tgm.domain.sealing import inbound_text_ref
from tgm.domain.url_policy import UrlRefused, check_url

MAX_TEXT_CHARS = 4096
MAX_URL_CHARS = 2048
MAX_COMMANDS = 50
MIN_API_TIMEOUT = 0.5
MAX_API_TIMEOUT = 30.0
API_METHODS = frozenset({"GET", "POST"})
COMMAND_NAME = re.compile(r"/[a-z0-9_]{1,32}")
# Commands a managed bot's owner may not redefine: /start is the welcome text.
RESERVED_COMMANDS = frozenset({"/start"})
_T = TypeVar("_T")


class InvalidSetting(DomainError):
    """A settings change the registry refuses (bad command name, URL, method, timeout or size).

    `code` is a stable reason code (the manager bot shows the catalogue text `setting_<code>`); `str()` stays an
    English sentence for logs and the gRPC status detail.
    """

    def __init__(self, message: str, code: str = "invalid") -> None:  # "invalid": the generic catalogue text
        super().__init__(message)
        self.code = code


# Reason codes of InvalidSetting (each has a catalogue key `setting_<code>` in src/tgm/domain/messages.py).
SETTING_REASON_CODES = frozenset(
    {
        "invalid",
        "command_name",
        "command_reserved",
        "text_empty",
        "text_too_long",
        "url_invalid",
        "url_unparsable",
        "url_scheme",
        "url_credentials",
        "method",
        "timeout",
        "too_many_commands",
        "command_unknown",
        "block_user",
        "block_duration",
        "too_many_blocks",
        "block_team_member",
        "user_not_blocked",
        "limit_action",
        "limit_value",
        "too_many_limits",
        "captcha_mode",
        # co-admins (issue 15)
        "invite_invalid",
        "invite_expired",
        "invite_used",
        "invite_own_bot",
        "invite_already_admin",
        "too_many_admins",
        "too_many_invites",
        "admin_unknown",
        "owner_cannot_leave",
    }
)
MIN_BLOCK_SECONDS = 60
_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# What a bot's own limit may name: every action the inbound guard limits (src/tgm/domain/inbound.py, action_of).
LIMITED_ACTION = re.compile(r"default|msg|cmd:\*|cb:\*|cmd:/[a-z0-9_]{1,32}|cb:[A-Za-z0-9_-]{1,32}")
MAX_RATE_LIMIT = 10_000
MAX_LIMIT_SECONDS = 86_400
MAX_OWN_LIMITS = 50  # per bot: rate limits and cooldowns together


def parse_duration(text: str, *, seconds: bool = False) -> int | None:
    """'30m', '1h', '2d' (and '10s' with `seconds`) → seconds; None for anything else (the range is checked where
    it is used: a block is counted in minutes at least, a rate window or a cooldown may be seconds)."""
    matched = _DURATION.match(text.strip().lower())
    if not matched or (matched.group(2) == "s" and not seconds):
        return None
    return int(matched.group(1)) * _DURATION_SECONDS[matched.group(2)]


MAX_BLOCK_SECONDS = 30 * 24 * 3600
MAX_BLOCKED_USERS = 1000  # per bot; expired blocks are dropped on every change
MAX_SUBSCRIBERS_PAGE = 1000


class InteractionStats(Protocol):
    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None, now: datetime) -> None: ...

    def stats(self, bot_id: str, now: datetime) -> BotStats: ...

    def subscriber_stats(self, bot_id: str, now: datetime, blocked_by_admin: Collection[int]) -> SubscriberStats: ...

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int: ...

    def list_subscribers(self, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        """Statuses active or blocked the bot (admin blocks are not the stats' to know)."""
        ...


class ManagerLookup(Protocol):
    def manager_bot(self) -> Bot | None: ...


def validate_command_name(command: str) -> str:
    name = command.strip().lower()
    if not COMMAND_NAME.fullmatch(name):
        raise InvalidSetting("a command is / followed by 1-32 letters, digits or _", "command_name")
    if name in RESERVED_COMMANDS:
        raise InvalidSetting("/start is the welcome text; use the welcome setting", "command_reserved")
    return name


def validate_limited_action(action: str) -> str:
    """'cmd:/start', 'cb:buy', 'msg', 'cmd:*', 'cb:*' or 'default'; a bare '/start' means 'cmd:/start'."""
    name = action.strip()
    if name.startswith("/"):
        name = "cmd:" + name.lower()
    if not LIMITED_ACTION.fullmatch(name):
        raise InvalidSetting("an action is default, msg, cmd:*, cb:*, a /command or cb:<button action>", "limit_action")
    return name


def validate_text(text: str) -> str:
    if not text.strip():
        raise InvalidSetting("the text is empty", "text_empty")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidSetting(f"the text is longer than {MAX_TEXT_CHARS} characters", "text_too_long")
    return text


def validate_api(api: ApiCommand) -> ApiCommand:
    url = api.url.strip()
    # The shared SSRF policy (src/tgm/domain/url_policy.py): http(s) only, no credentials, no private or
    # reserved IP literal; the dispatcher checks the resolved address and the port (web ports only, unless its
    # EXTERNAL_API_ALLOW_PRIVATE development switch is on, which the registry cannot know) again at call time.
    try:
        check_url(url, allowed_ports=None)
    except UrlRefused as exc:
        raise InvalidSetting(str(exc), exc.code) from None
    method = api.method.strip().upper() or "GET"
    if method not in API_METHODS:
        raise InvalidSetting("the method is GET or POST", "method")
    if not MIN_API_TIMEOUT <= api.timeout_seconds <= MAX_API_TIMEOUT:
        raise InvalidSetting(f"the timeout is {MIN_API_TIMEOUT}-{MAX_API_TIMEOUT:.0f} seconds", "timeout")
    return ApiCommand(url=url, method=method, timeout_seconds=float(api.timeout_seconds))


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
        self._bots = bots
        self._admins = admins
        self._invite_ttl = invite_ttl
        self._manager = manager
        self._telegram = telegram
        self._vault = vault
        self._clock = clock
        self._register = register_bot
        self._stats = stats

    # -- registration --------------------------------------------------------------------------------

    def register_sealed(self, owner_id: int, ciphertext: bytes, sealed_by_bot_id: str, chat_id: int) -> Registration:
        """A token the gateway sealed out of a message to the manager bot.

        The ciphertext is bound (vault bot_ref) to the manager bot, the sender and the chat it came from: it
        opens only for the owner and chat the dispatcher claims, so a blob replayed under another owner fails.
        """
        manager = self._manager.manager_bot()
        if manager is None or manager.id != sealed_by_bot_id:
            raise InvalidToken("sealed text must come from the manager bot")
        try:
            plaintext = self._vault.decrypt(
                inbound_text_ref(manager.id, owner_id, chat_id),
                SecretKind.INBOUND_TEXT,
                DecryptPurpose.MANAGE,
                ciphertext,
            )
        except SecretRejected:
            raise InvalidToken("the sealed text was not sent by this admin in this chat") from None
        token = BotToken(plaintext)  # InvalidToken for anything else
        if token.telegram_bot_id == manager.telegram_bot_id:
            raise BotOwnedByAnotherAdmin("this bot is registered by another admin")
        bot, refreshed = self._register.register(RegisterBotCommand(owner_id=owner_id, token=token))
        return Registration(bot, refreshed)

    def register_managed(self, owner_id: int, managed_bot_user_id: int) -> Registration:
        """A bot the owner created through the manager bot, or one whose token or owner changed (the
        `managed_bot` update): its token comes from getManagedBotToken. Telegram is authoritative for managed
        bots, so a new owner takes the bot over from the previous one."""
        manager = self._manager.manager_bot()
        if manager is None:
            raise BotNotFound("no manager bot is registered")
        manager_token = BotToken(
            self._vault.decrypt(manager.id, SecretKind.BOT_TOKEN, DecryptPurpose.MANAGE, manager.sealed_token)
        )
        # Succeeds only for a bot this manager bot manages: that is what makes Telegram's word authoritative.
        token = self._telegram.get_managed_bot_token(manager_token, managed_bot_user_id)
        if token.telegram_bot_id != managed_bot_user_id:
            raise InvalidToken("Telegram returned the token of another bot")
        bot, refreshed = self._register.register(
            RegisterBotCommand(owner_id=owner_id, token=token, owner_is_authoritative=True)
        )
        if not refreshed and self._admins is not None:
            # New here, or taken over from another owner: the admins and invites of the previous owner go.
            self._admins.clear(bot.id)
        return Registration(bot, refreshed)

    # -- reading -------------------------------------------------------------------------------------

    def _role(self, bot: Bot, actor_id: int) -> BotRole | None:
        if bot.owner_id == actor_id or self._admins is None or bot.is_manager or actor_id <= 0:
            return role_in(bot, actor_id, frozenset())  # owners need no lookup
        return role_in(bot, actor_id, self._admins.admin_ids(bot.id))

    def authorized(self, actor_id: int, bot_id: str, action: BotAction) -> tuple[Bot, BotRole]:
        """The bot and the actor's role on it when they may do `action`: the one authorization check.

        No role (or no such bot, or the manager bot): BotNotFound, the same answer whether it exists or not. A role
        that may not do it: ActionNotPermitted. Read fresh on every call, so a revoked admin is refused at once.
        """
        bot = self._bots.get(bot_id) if bot_id and len(bot_id) <= 64 else None
        role = self._role(bot, actor_id) if bot is not None else None
        if bot is None or role is None:
            raise BotNotFound("no such bot")
        if not may(role, action):
            raise ActionNotPermitted(
                f"an {role.value} may not {action.value}", actor_id, bot.id, action.value, role.value
            )
        return bot, role

    def _bot_for(self, actor_id: int, bot_id: str, action: BotAction) -> Bot:
        return self.authorized(actor_id, bot_id, action)[0]

    def team(self, bot_id: str) -> BotTeam:
        """The bot's owner and admins, for a service acting on the bot's behalf (a broadcast's report, a feedback
        message forwarded to the admins). No actor: callers decide who may learn it."""
        bot = self._bots.get(bot_id) if bot_id and len(bot_id) <= 64 else None
        if bot is None or bot.is_manager:
            raise BotNotFound("no such bot")
        return BotTeam(bot, tuple(self._admins.admins(bot.id)) if self._admins is not None else ())

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
        bot = self._bot_for(actor_id, bot_id, BotAction.VIEW)
        return bot, self._stats.stats(bot.id, self._clock.now())

    def subscriber_stats(self, actor_id: int, bot_id: str) -> tuple[Bot, SubscriberStats]:
        """The actor's bot's subscribers by status; "blocked by the admin" are the /blocks in force now."""
        bot = self._bot_for(actor_id, bot_id, BotAction.VIEW)
        now = self._clock.now()
        in_force = [user for user, until in bot.settings.blocked_users.items() if until > now.timestamp()]
        return bot, self._stats.subscriber_stats(bot.id, now, in_force)

    def list_subscribers(self, actor_id: int, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        """One page of the actor's bot's subscribers (user id ascending, after `after_user_id`; at most
        MAX_SUBSCRIBERS_PAGE), a /block in force shown as blocked by the admin."""
        bot = self._bot_for(actor_id, bot_id, BotAction.VIEW)
        if not 0 < limit <= MAX_SUBSCRIBERS_PAGE:
            raise InvalidSetting(f"a page holds 1-{MAX_SUBSCRIBERS_PAGE} subscribers")
        now = self._clock.now().timestamp()
        in_force = {user for user, until in bot.settings.blocked_users.items() if until > now}
        page = self._stats.list_subscribers(bot.id, max(after_user_id, 0), limit)
        return [
            replace(item, status=SubscriberStatus.BLOCKED_BY_ADMIN) if item.telegram_user_id in in_force else item
            for item in page
        ]

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int:
        """The dispatcher's report of users who blocked the bot (Telegram's 403); returns the rows marked. A time
        after the registry's clock counts as now."""
        now = self._clock.now()
        valid = [
            replace(entry, at=min(entry.at, now))
            for entry in entries
            if entry.telegram_user_id > 0 and 0 < len(entry.bot_id) <= 64
        ]
        return self._stats.mark_blocked(valid) if valid else 0

    # -- state changes -------------------------------------------------------------------------------

    def _retrying(self, change: Callable[[], _T]) -> _T:
        """Runs a read-modify-write again when its compare-and-set lost to a concurrent writer."""
        for _attempt in range(MAX_ATTEMPTS - 1):
            try:
                return change()
            except ConcurrentUpdate:
                continue
        return change()

    def set_enabled(self, actor_id: int, bot_id: str, enabled: bool) -> Bot:
        def change() -> Bot:
            bot = self._bot_for(actor_id, bot_id, BotAction.SET_STATUS)
            now = self._clock.now()
            if enabled:
                bot.enable(now)
            else:
                bot.disable(now)
            self._bots.save(bot)
            return bot

        return self._retrying(change)

    def _token_of(self, bot: Bot) -> BotToken:
        return BotToken(self._vault.decrypt(bot.id, SecretKind.BOT_TOKEN, DecryptPurpose.MANAGE, bot.sealed_token))

    def rotate_secret(self, actor_id: int, bot_id: str) -> Bot:
        def change() -> Bot:
            bot = self._bot_for(actor_id, bot_id, BotAction.ROTATE_SECRET)
            if bot.status not in (BotStatus.ACTIVE, BotStatus.DISABLED):
                raise IllegalTransition(f"bot {bot.id}: cannot rotate the secret of a {bot.status.value} bot")
            token = self._token_of(bot)
            secret = WebhookSecret.generate()
            self._telegram.set_webhook(
                token,
                WebhookRegistration(
                    url=self._register.webhook_url(bot.public_id),
                    secret_token=secret.value,
                    allowed_updates=allowed_updates(bot),
                    drop_pending_updates=False,
                ),
            )
            bot.webhook_secret_sha256 = secret.sha256
            bot.updated_at = self._clock.now()
            try:
                self._bots.save(bot)
            except ConcurrentUpdate:
                # Deleted meanwhile: the webhook just set must go. Still serving: the retry sets it again.
                self._register.compensate_lost_write(token, bot.id)
                raise
            return bot

        return self._retrying(change)

    def delete(self, actor_id: int, bot_id: str) -> Bot:
        def change() -> Bot:
            bot = self._bot_for(actor_id, bot_id, BotAction.DELETE)
            now = self._clock.now()
            bot.delete(now)  # IllegalTransition before anything reaches Telegram (also: deleted by a racer)
            with contextlib.suppress(TokenRejected):  # revoked meanwhile: Telegram will not deliver to us anyway
                self._telegram.delete_webhook(self._token_of(bot), drop_pending_updates=True)
            bot.sealed_token = b""  # a deleted bot keeps no token, not even sealed
            bot.webhook_secret_sha256 = b""
            self._bots.save(bot)
            return bot

        return self._retrying(change)

    def _in_team(self, bot: Bot, telegram_user_id: int) -> bool:
        if telegram_user_id == bot.owner_id:
            return True
        admins = self._admins.admins(bot.id) if self._admins is not None else ()
        return any(admin.telegram_user_id == telegram_user_id for admin in admins)

    def _blocks_after(self, blocked: dict[int, int], change: BlockUser | UnblockUser) -> dict[int, int]:
        now = int(self._clock.now().timestamp())
        live = {user: until for user, until in blocked.items() if until > now}
        if not 0 < change.telegram_user_id < 2**53:
            raise InvalidSetting("a Telegram user id is a positive number", "block_user")
        if isinstance(change, UnblockUser):
            if change.telegram_user_id not in live:
                raise InvalidSetting("that user is not blocked", "user_not_blocked")
            return {user: until for user, until in live.items() if user != change.telegram_user_id}
        if not MIN_BLOCK_SECONDS <= change.seconds <= MAX_BLOCK_SECONDS:
            raise InvalidSetting("a block lasts from a minute to 30 days", "block_duration")
        if change.telegram_user_id not in live and len(live) >= MAX_BLOCKED_USERS:
            raise InvalidSetting(f"at most {MAX_BLOCKED_USERS} users blocked at once", "too_many_blocks")
        return {**live, change.telegram_user_id: now + change.seconds}

    def _limits_after(self, settings: BotSettings, change: SetRateLimit | SetCooldown | ResetLimits) -> BotSettings:
        if isinstance(change, ResetLimits):
            return replace(settings, rate_limits={}, cooldowns={})
        action = validate_limited_action(change.action)
        rate_limits, cooldowns = dict(settings.rate_limits), dict(settings.cooldowns)
        if isinstance(change, SetRateLimit):
            if change.limit == 0:
                rate_limits.pop(action, None)
            elif not (1 <= change.limit <= MAX_RATE_LIMIT and 1 <= change.window_seconds <= MAX_LIMIT_SECONDS):
                raise InvalidSetting(f"a rate limit is 1-{MAX_RATE_LIMIT} per 1 s to 1 day", "limit_value")
            else:
                rate_limits[action] = RateRule(change.limit, float(change.window_seconds))
        elif change.seconds == 0:
            cooldowns.pop(action, None)
        elif not 1 <= change.seconds <= MAX_LIMIT_SECONDS:
            raise InvalidSetting("a cooldown lasts from 1 s to 1 day", "limit_value")
        else:
            cooldowns[action] = float(change.seconds)
        if len(rate_limits) + len(cooldowns) > MAX_OWN_LIMITS:
            raise InvalidSetting(f"at most {MAX_OWN_LIMITS} limits and cooldowns per bot", "too_many_limits")
        return replace(settings, rate_limits=rate_limits, cooldowns=cooldowns)

    def update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        return self._retrying(lambda: self._update_settings(actor_id, bot_id, change))

    def _update_settings(self, actor_id: int, bot_id: str, change: SettingsChange) -> Bot:
        bot = self._bot_for(actor_id, bot_id, BotAction.CONFIGURE)
        if bot.status not in (BotStatus.ACTIVE, BotStatus.DISABLED):
            raise IllegalTransition(f"bot {bot.id}: a {bot.status.value} bot cannot be configured")
        settings = bot.settings
        if isinstance(change, SetWelcome):
            bot.settings = replace(settings, welcome_text=validate_text(change.text))
        elif isinstance(change, BlockUser | UnblockUser):
            if isinstance(change, BlockUser) and self._in_team(bot, change.telegram_user_id):
                # A co-admin blocking the owner (or another admin) as a user would silence their inbox replies.
                raise InvalidSetting("the bot's owner and admins cannot be blocked", "block_team_member")
            bot.settings = replace(settings, blocked_users=self._blocks_after(settings.blocked_users, change))
        elif isinstance(change, SetCaptchaMode):
            try:
                mode = CaptchaMode(change.mode.strip().lower())
            except ValueError:
                raise InvalidSetting("the CAPTCHA mode is auto, on or off", "captcha_mode") from None
            bot.settings = replace(settings, captcha_mode=mode)
        elif isinstance(change, SetInboxMode):
            bot.settings = replace(settings, inbox_enabled=bool(change.enabled))
        elif isinstance(change, SetRateLimit | SetCooldown | ResetLimits):
            bot.settings = self._limits_after(settings, change)
        elif isinstance(change, SetMaintenance):
            # Only the flag and its text change: commands, welcome and users stay as they are for the way back.
            bot.settings = replace(settings, maintenance_text=validate_text(change.text) if change.text else "")
        elif isinstance(change, SetCommand):
            name = validate_command_name(change.command)
            self._check_room(bot, name)
            commands = {**settings.custom_commands, name: validate_text(change.reply)}
            apis = {k: v for k, v in settings.api_commands.items() if k != name}
            bot.settings = replace(settings, custom_commands=commands, api_commands=apis)
        elif isinstance(change, SetApiCommand):
            name = validate_command_name(change.command)
            self._check_room(bot, name)
            apis = {**settings.api_commands, name: validate_api(change.api)}
            commands = {k: v for k, v in settings.custom_commands.items() if k != name}
            bot.settings = replace(settings, custom_commands=commands, api_commands=apis)
        elif isinstance(change, RemoveCommand):
            name = validate_command_name(change.command)
            if name not in settings.custom_commands and name not in settings.api_commands:
                raise InvalidSetting(f"{name} is not configured", "command_unknown")
            bot.settings = replace(
                settings,
                custom_commands={k: v for k, v in settings.custom_commands.items() if k != name},
                api_commands={k: v for k, v in settings.api_commands.items() if k != name},
            )
        else:  # pragma: no cover - exhaustive
            raise InvalidSetting("unknown change")
        bot.updated_at = self._clock.now()
        self._bots.save(bot)
        return bot

    @staticmethod
    def _check_room(bot: Bot, name: str) -> None:
        names = set(bot.settings.custom_commands) | set(bot.settings.api_commands)
        if name not in names and len(names) >= MAX_COMMANDS:
            raise InvalidSetting(f"at most {MAX_COMMANDS} commands per bot", "too_many_commands")

    def record_interaction(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        if telegram_user_id <= 0:
            return
        self._stats.record(bot_id, telegram_user_id, (language_code or "")[:16] or None, self._clock.now())

    # -- co-admins (issue 15): invites, redeeming, revoking, leaving ----------------------------------

    def _admin_store(self) -> BotAdminStore:
        if self._admins is None:
            raise InvalidSetting("co-admins are not configured", "invite_invalid")
        return self._admins

    def create_invite(self, actor_id: int, bot_id: str) -> IssuedInvite:
        """A one-time code for one bot, expiring after the invite TTL (owner only). Only its hash is stored."""
        store = self._admin_store()
        bot = self._bot_for(actor_id, bot_id, BotAction.MANAGE_ADMINS)
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
        role = self._role(bot, actor_id)
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
        bot = self._bot_for(actor_id, bot_id, BotAction.MANAGE_ADMINS)
        return bot, store.admins(bot.id), store.pending_invites(bot.id, self._clock.now())

    def revoke_admin(self, actor_id: int, membership_id: str) -> tuple[Bot, CoAdmin]:
        """The owner removes an admin (or an admin removes themself): their next call is refused."""
        store = self._admin_store()
        membership = store.membership(membership_id) if 0 < len(membership_id) <= 64 else None
        if membership is None:
            raise InvalidSetting("that person is no longer an admin", "admin_unknown")
        action = BotAction.VIEW if membership.telegram_user_id == actor_id else BotAction.MANAGE_ADMINS
        bot = self._bot_for(actor_id, membership.bot_id, action)
        if not store.remove_admin(bot.id, membership.telegram_user_id):
            raise InvalidSetting("that person is no longer an admin", "admin_unknown")
        return bot, membership

    def leave(self, actor_id: int, bot_id: str) -> Bot:
        """An admin steps down on their own; the owner cannot (they delete the bot instead)."""
        store = self._admin_store()
        bot, role = self.authorized(actor_id, bot_id, BotAction.VIEW)
        if role is BotRole.OWNER:
            raise InvalidSetting("the owner cannot leave their own bot", "owner_cannot_leave")
        if not store.remove_admin(bot.id, actor_id):
            raise InvalidSetting("no longer an admin", "admin_unknown")
        return bot

    def revoke_invite(self, actor_id: int, invite_id: str) -> Bot:
        """The owner withdraws a pending invite: its code no longer works."""
        store = self._admin_store()
        invite = store.invite(invite_id) if 0 < len(invite_id) <= 64 else None
        if invite is None:
            raise InvalidSetting("no such invite", "invite_invalid")
        bot = self._bot_for(actor_id, invite.bot_id, BotAction.MANAGE_ADMINS)
        if not store.revoke_invite(invite.id, self._clock.now()):
            raise InvalidSetting("the invite is no longer open", "invite_used")
        return bot
