"""`tgm bots`, `tgm users` and `tgm limits`: the operator acts on any bot through the registry (operator certificate).

The registry's admin RPCs act for a bot's owner (tenant isolation); the operator's certificate may call every RPC,
so these commands read the bot (GetBot) and act as its owner. Each action writes one structured log line (who, what,
which bot) to stderr, and the registry adds it to its event trail with the actor `operator` (`tgm events`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from tgm.domain.administration.ports import (
    BlockUser,
    ResetLimits,
    SetCaptchaMode,
    SetCooldown,
    SetMaintenance,
    SetRateLimit,
    SettingsChange,
    UnblockUser,
)
from tgm.domain.administration.setting_rules import parse_duration
from tgm.domain.manager_bot.limits import format_seconds, parse_rate
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.registry_client.admin import settings_request
from tgm.registry_client.client import status_from_proto

logger = logging.getLogger(f"{__name__}.operator")
TIMEOUT_SECONDS = 10.0


def add_parsers(sub: Any) -> None:
    bots = sub.add_parser("bots", help="any bot: list --owner N | show | enable | disable | maintenance | captcha")
    verbs = bots.add_subparsers(dest="action", required=True)
    listing = verbs.add_parser("list", help="one owner's bots")
    listing.add_argument("--owner", type=int, required=True, help="the owner's Telegram user id")
    for name, text in (("show", "one bot"), ("enable", "disabled → active"), ("disable", "active → disabled")):
        verbs.add_parser(name, help=text).add_argument("bot_id")
    maintenance = verbs.add_parser("maintenance", help="users get TEXT instead of the usual answers; --off ends it")
    maintenance.add_argument("bot_id")
    maintenance.add_argument("text", nargs="*")
    maintenance.add_argument("--off", action="store_true")
    captcha = verbs.add_parser("captcha", help="new users must pass a CAPTCHA: on, off or auto (while under attack)")
    captcha.add_argument("bot_id")
    captcha.add_argument("mode", help="on, off or auto")
    users = sub.add_parser("users", help="block BOT_ID USER_ID [--for 1h] | unblock BOT_ID USER_ID")
    user_verbs = users.add_subparsers(dest="action", required=True)
    block = user_verbs.add_parser("block", help="drop the user's updates to the bot for a while")
    block.add_argument("bot_id")
    block.add_argument("user_id", type=int)
    block.add_argument("--for", dest="duration", default="1h", help="30m, 1h, 2d … (1 minute to 30 days)")
    unblock = user_verbs.add_parser("unblock", help="lift a block")
    unblock.add_argument("bot_id")
    unblock.add_argument("user_id", type=int)
    limits = sub.add_parser("limits", help="show BOT_ID | set BOT_ID ACTION [--rate 5/1m] [--cooldown 10s] | reset")
    limit_verbs = limits.add_subparsers(dest="action", required=True)
    limit_verbs.add_parser("show", help="the bot's own rate limits and cooldowns").add_argument("bot_id")
    setting = limit_verbs.add_parser("set", help="the bot's own limit for one action, in force within seconds")
    setting.add_argument("bot_id")
    setting.add_argument("limited_action", metavar="ACTION", help="/start, cmd:*, cb:buy, cb:*, msg or default")
    setting.add_argument("--rate", help="COUNT/WINDOW per user, e.g. 5/1m; 'off' for the service's default")
    setting.add_argument("--cooldown", help="time between two, e.g. 10s; 'off' for the service's default")
    limit_verbs.add_parser("reset", help="the service's defaults for every action").add_argument("bot_id")


def describe(bot: registry_pb2.Bot) -> str:
    """Everything but the sealed token."""
    lines = [
        f"bot_id       {bot.bot_id}",
        f"username     @{bot.username}",
        f"owner_id     {bot.owner_id}",
        f"status       {status_from_proto(bot.status).value}",
        f"maintenance  {bot.maintenance_text or 'off'}",
        f"captcha      {bot.captcha_mode or 'auto'}",
        f"inbox        {'on' if bot.inbox_enabled else 'off'}",
        f"commands     {', '.join(sorted([*bot.custom_commands, *(a.command for a in bot.api_commands)])) or '-'}",
    ]
    for user_id, until in sorted(bot.blocked_users.items()):
        lines.append(f"blocked      {user_id} until {datetime.fromtimestamp(until, UTC):%Y-%m-%d %H:%M} UTC")
    for action in sorted({*bot.rate_limits, *bot.cooldowns}):
        own = []
        if action in bot.rate_limits:
            rule = bot.rate_limits[action]
            own.append(f"{rule.limit} per {format_seconds(rule.window_seconds)}")
        if action in bot.cooldowns:
            own.append(f"cooldown {format_seconds(bot.cooldowns[action])}")
        lines.append(f"limit        {action}: {', '.join(own)}")
    return "\n".join(lines)


def run(verb: str, args: argparse.Namespace, channel: grpc.Channel) -> int:
    """One `tgm bots …` / `tgm users …` command on an open registry channel; prints the result, returns the code."""
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    try:
        if verb == "bots" and args.action == "list":
            for bot in stub.ListBots(registry_pb2.ListBotsRequest(owner_id=args.owner), timeout=TIMEOUT_SECONDS).bots:
                # Owned bots first, then those the user administers (co-admins, issue 15).
                role = "owner" if bot.owner_id == args.owner else f"admin (owner {bot.owner_id})"
                print(f"{bot.bot_id}  @{bot.username}  {status_from_proto(bot.status).value}  {role}")
            return 0
        bot = stub.GetBot(registry_pb2.GetBotRequest(bot_id=args.bot_id), timeout=TIMEOUT_SECONDS).bot
        if args.action == "show":
            print(describe(bot))
            return 0
        act = _action(verb, args, bot.owner_id)
        if act is None:
            return 2
        changed = act(stub)
    except grpc.RpcError as error:
        code = error.code() if callable(getattr(error, "code", None)) else None
        print(f"tgm {verb} {args.action}: {code.name if code else 'failed'}: {error.details()}", file=sys.stderr)
        return 1
    logger.info(
        "operator action", extra={"command": f"{verb} {args.action}", "bot_id": bot.bot_id, "owner_id": bot.owner_id}
    )
    print(describe(changed))
    return 0


def _action(
    verb: str, args: argparse.Namespace, owner: int
) -> Callable[[registry_pb2_grpc.RegistryServiceStub], registry_pb2.Bot] | None:
    """The change as the bot's owner, or None (usage printed) when the arguments do not make one."""
    if verb == "bots" and args.action in ("enable", "disable"):
        request = registry_pb2.SetBotStatusRequest(actor_id=owner, bot_id=args.bot_id, enabled=args.action == "enable")
        return lambda stub: stub.SetBotStatus(request, timeout=TIMEOUT_SECONDS).bot
    changes = _limits_changes(args) if verb == "limits" else _settings_change(verb, args)
    if not changes:
        return None
    requests = [settings_request(owner, args.bot_id, change) for change in changes]

    def apply(stub: registry_pb2_grpc.RegistryServiceStub) -> registry_pb2.Bot:
        bot = registry_pb2.Bot()
        for request in requests:
            bot = stub.UpdateBotSettings(request, timeout=TIMEOUT_SECONDS).bot
        return bot

    return apply


def _settings_change(verb: str, args: argparse.Namespace) -> list[SettingsChange]:
    """`tgm bots captcha|maintenance`, `tgm users block|unblock` as a settings change ([] after a usage line)."""
    if verb == "bots" and args.action == "captcha":
        if args.mode not in ("on", "off", "auto"):
            print("tgm bots captcha: the mode is on, off or auto", file=sys.stderr)
            return []
        return [SetCaptchaMode(args.mode)]
    if verb == "bots":  # maintenance
        text = " ".join(args.text).strip()
        if args.off == bool(text):
            print("tgm bots maintenance: give the users' TEXT, or --off", file=sys.stderr)
            return []
        return [SetMaintenance("" if args.off else text)]
    if args.action == "block":
        seconds = parse_duration(args.duration)
        if seconds is None:
            print("tgm users block: --for takes 30m, 1h, 2d …", file=sys.stderr)
            return []
        return [BlockUser(args.user_id, seconds)]
    return [UnblockUser(args.user_id)]


def _limits_changes(args: argparse.Namespace) -> list[SettingsChange]:
    """`tgm limits set|reset` as settings changes ([] after a usage line: nothing is half applied)."""
    if args.action == "reset":
        return [ResetLimits()]
    if args.rate is None and args.cooldown is None:
        print("tgm limits set: give --rate COUNT/WINDOW and/or --cooldown TIME (or 'off')", file=sys.stderr)
        return []
    changes: list[SettingsChange] = []
    if args.rate is not None:
        rate = (0, 0.0) if args.rate == "off" else parse_rate(args.rate)
        if rate is None:
            print("tgm limits set: --rate takes COUNT/WINDOW, e.g. 5/1m, 100/1h, or off", file=sys.stderr)
            return []
        changes.append(SetRateLimit(args.limited_action, *rate))
    if args.cooldown is not None:
        seconds = 0 if args.cooldown == "off" else parse_duration(args.cooldown, seconds=True)
        if seconds is None:
            print("tgm limits set: --cooldown takes a time, e.g. 10s, 1m, or off", file=sys.stderr)
            return []
        changes.append(SetCooldown(args.limited_action, float(seconds)))
    return changes


def registry_channel(verb: str) -> grpc.Channel | None:
    """The registry channel from the environment (REGISTRY_ADDR, the operator's TLS_* files); None after a line
    saying what is missing."""
    import os

    from tgm.grpc_runtime.channels import open_channel
    from tgm.grpc_runtime.tls import TlsConfigError, required_tls_from_env

    address = os.environ.get("REGISTRY_ADDR", "")
    if not address:
        print(f"tgm {verb}: set REGISTRY_ADDR (and the operator's TLS_* files)", file=sys.stderr)
        return None
    try:
        tls = required_tls_from_env()
    except TlsConfigError as error:
        print(f"tgm {verb}: {error}", file=sys.stderr)
        return None
    return open_channel(address, tls=tls, server_name="botregistry")


def main(verb: str, args: argparse.Namespace) -> int:
    """Opens the registry channel from the environment and runs the command on it."""
    from tgm.observability.logging import configure_logging

    configure_logging("tgm-cli", "INFO")
    channel = registry_channel(verb)
    if channel is None:
        return 2
    try:
        return run(verb, args, channel)
    finally:
        channel.close()
