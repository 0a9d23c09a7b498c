"""`/limits` in the manager bot (issue 12): the admin's words to settings changes, and a bot's own limits shown.

    /limits @bot                      the bot's own rate limits and cooldowns
    /limits @bot /start 5/1m          at most 5 /start per user per minute
    /limits @bot /start cooldown 10s  10 s between two /start of one user
    /limits @bot /start off           the service's defaults again for /start
    /limits @bot reset                the service's defaults for everything

The registry validates the action and the numbers (administration/setting_rules.py); this only reads the words.
"""

from __future__ import annotations

import re

from tgm.domain.administration.ports import ResetLimits, SetCooldown, SetRateLimit, SettingsChange
from tgm.domain.administration.setting_rules import parse_duration
from tgm.domain.bots import BotSettings
from tgm.domain.view import Joined, Text, Value

RESET = frozenset({"reset", "padrao", "padrão"})
OFF = frozenset({"off", "desligar"})
COOLDOWN = frozenset({"cooldown", "espera"})
COUNT = re.compile(r"[0-9]{1,5}")  # ASCII digits only ('²'.isdigit() is true); the registry checks the range


def parse_limits(rest: str) -> tuple[SettingsChange, ...] | None:
    """() to show the limits, the changes to make, or None when the words are not a /limits request."""
    words = rest.split()
    if not words:
        return ()
    if len(words) == 1:
        return (ResetLimits(),) if words[0].lower() in RESET else None
    action, what = words[0], words[1].lower()
    if len(words) == 2 and what in OFF:
        return SetRateLimit(action, 0, 0.0), SetCooldown(action, 0.0)
    if len(words) == 3 and what in COOLDOWN:
        seconds = parse_duration(words[2], seconds=True)
        return None if seconds is None else (SetCooldown(action, float(seconds)),)
    if len(words) == 2 and "/" in what:
        rate = parse_rate(what)
        return None if rate is None else (SetRateLimit(action, *rate),)
    return None


def parse_rate(text: str) -> tuple[int, float] | None:
    """'5/1m' → (5, 60.0): a count of ASCII digits and a window ('10s', '1m', '1h', '1d'); None otherwise."""
    count, _, window = text.partition("/")
    seconds = parse_duration(window, seconds=True)
    if not COUNT.fullmatch(count) or seconds is None:
        return None
    return int(count), float(seconds)


def format_seconds(seconds: float) -> str:
    """60 → '1m', 90 → '90s', 7200 → '2h': the largest unit that divides it."""
    whole = round(seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def describe_limits(username: str, settings: BotSettings) -> Text:
    """The bot's own limits: one line per action with its rate limit and cooldown."""
    actions = sorted(set(settings.rate_limits) | set(settings.cooldowns))
    lines: list[Value] = []
    for action in actions:
        rules: list[Value] = []
        rule = settings.rate_limits.get(action)
        if rule is not None:
            rules.append(Text("limits_rate", {"limit": rule.limit, "window": format_seconds(rule.window_seconds)}))
        if action in settings.cooldowns:
            rules.append(Text("limits_cooldown", {"seconds": format_seconds(settings.cooldowns[action])}))
        lines.append(Text("limits_line", {"action": action, "rules": Joined(rules, " · ")}))
    body = Joined(lines) if lines else Text("limits_none")
    return Text("mgr_limits", {"username": username, "limits": body})
