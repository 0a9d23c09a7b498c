"""The rules of a bot's settings: what the registry accepts in a settings change, and the settings after it.

Pure: no store, no clock (the time is given). A refusal is InvalidSetting with a stable reason code, shown by the
manager bot as the catalogue text `setting_<code>`.
"""

from __future__ import annotations

import re
from dataclasses import replace

from tgm.domain.administration.ports import (
    BlockUser,
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
    UnblockUser,
)
from tgm.domain.bots import ApiCommand, BotSettings, CaptchaMode, RateRule
from tgm.domain.errors import DomainError
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


def blocks_after(blocked: dict[int, int], change: BlockUser | UnblockUser, now: int) -> dict[int, int]:
    """The blocked users (user id → until, unix seconds) after `change`; expired blocks are dropped."""
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


def limits_after(settings: BotSettings, change: SetRateLimit | SetCooldown | ResetLimits) -> BotSettings:
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


def check_room(settings: BotSettings, name: str) -> None:
    names = set(settings.custom_commands) | set(settings.api_commands)
    if name not in names and len(names) >= MAX_COMMANDS:
        raise InvalidSetting(f"at most {MAX_COMMANDS} commands per bot", "too_many_commands")


def settings_after(settings: BotSettings, change: SettingsChange, now: int) -> BotSettings:
    """The settings after `change` (`now` in unix seconds, for blocks). Who may be blocked is the caller's check."""
    if isinstance(change, SetWelcome):
        return replace(settings, welcome_text=validate_text(change.text))
    if isinstance(change, BlockUser | UnblockUser):
        return replace(settings, blocked_users=blocks_after(settings.blocked_users, change, now))
    if isinstance(change, SetCaptchaMode):
        try:
            mode = CaptchaMode(change.mode.strip().lower())
        except ValueError:
            raise InvalidSetting("the CAPTCHA mode is auto, on or off", "captcha_mode") from None
        return replace(settings, captcha_mode=mode)
    if isinstance(change, SetInboxMode):
        return replace(settings, inbox_enabled=bool(change.enabled))
    if isinstance(change, SetRateLimit | SetCooldown | ResetLimits):
        return limits_after(settings, change)
    if isinstance(change, SetMaintenance):
        # Only the flag and its text change: commands, welcome and users stay as they are for the way back.
        return replace(settings, maintenance_text=validate_text(change.text) if change.text else "")
    if isinstance(change, SetCommand):
        name = validate_command_name(change.command)
        check_room(settings, name)
        commands = {**settings.custom_commands, name: validate_text(change.reply)}
        apis = {k: v for k, v in settings.api_commands.items() if k != name}
        return replace(settings, custom_commands=commands, api_commands=apis)
    if isinstance(change, SetApiCommand):
        name = validate_command_name(change.command)
        check_room(settings, name)
        apis = {**settings.api_commands, name: validate_api(change.api)}
        commands = {k: v for k, v in settings.custom_commands.items() if k != name}
        return replace(settings, custom_commands=commands, api_commands=apis)
    if isinstance(change, RemoveCommand):
        name = validate_command_name(change.command)
        if name not in settings.custom_commands and name not in settings.api_commands:
            raise InvalidSetting(f"{name} is not configured", "command_unknown")
        return replace(
            settings,
            custom_commands={k: v for k, v in settings.custom_commands.items() if k != name},
            api_commands={k: v for k, v in settings.api_commands.items() if k != name},
        )
    raise InvalidSetting("unknown change")  # pragma: no cover - exhaustive
