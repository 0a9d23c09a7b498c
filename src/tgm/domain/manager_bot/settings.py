"""Settings commands: /setwelcome, /setcommand, /setapi, /delcommand, /maintenance, /block, /unblock."""

from __future__ import annotations

from tgm.domain.administration.ports import (
    BlockUser,
    RemoveCommand,
    SetApiCommand,
    SetCommand,
    SetMaintenance,
    SettingsChange,
    SetWelcome,
    UnblockUser,
)
from tgm.domain.administration.setting_rules import parse_duration
from tgm.domain.bots import ApiCommand
from tgm.domain.manager_bot.commands import USAGE_KEYS
from tgm.domain.manager_bot.conversation import AWAIT_API, AWAIT_COMMAND, AWAIT_WELCOME
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.registry_calls import RegistryCalls
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Text

DEFAULT_BLOCK = "1h"
MAINTENANCE_OFF = frozenset({"off", "desligar"})


class SettingsCommands(RegistryCalls):
    """A settings command (or the answer to its prompt) to a SettingsChange."""

    def _configure_command(self, ctx: Ctx, command: str, arg: str) -> HandleOutcome:
        ref, _, rest = arg.partition(" ")
        rest = rest.strip()
        if not ref or not rest:
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS[command]))
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

    def _configure_answer(self, ctx: Ctx, kind: str, bot_id: str, text: str) -> HandleOutcome:
        if kind == AWAIT_WELCOME:
            return self._apply(ctx, bot_id, SetWelcome(text), None)
        name, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if not name or not rest:
            usage_key = "usage_command_answer" if kind == AWAIT_COMMAND else "usage_api_answer"
            self._say(ctx, "mgr_usage", usage=Text(usage_key))
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

    def _block_command(self, ctx: Ctx, command: str, bot_id: str, rest: str) -> HandleOutcome:
        words = rest.split()
        duration = (words[1] if len(words) > 1 else DEFAULT_BLOCK).lower()
        seconds = parse_duration(duration)
        if not words[0].isdigit() or len(words) > 2 or (command == "/block" and seconds is None):
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS[command]))
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

    def _apply(self, ctx: Ctx, bot_id: str, change: SettingsChange, command: str | None) -> HandleOutcome:
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
