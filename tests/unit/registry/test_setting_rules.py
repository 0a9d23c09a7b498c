"""The settings rules alone: no store, no clock, no registry (src/tgm/domain/administration/setting_rules.py)."""

from __future__ import annotations

import pytest

from tgm.domain.administration.ports import (
    BlockUser,
    RemoveCommand,
    SetCommand,
    SetCooldown,
    SetRateLimit,
    UnblockUser,
)
from tgm.domain.administration.setting_rules import (
    MAX_COMMANDS,
    SETTING_REASON_CODES,
    InvalidSetting,
    settings_after,
)
from tgm.domain.bots import BotSettings, RateRule

NOW = 1_800_000_000


def refusal(settings: BotSettings, change: object) -> str:
    with pytest.raises(InvalidSetting) as refused:
        settings_after(settings, change, NOW)  # type: ignore[arg-type]
    assert refused.value.code in SETTING_REASON_CODES
    return refused.value.code


def test_a_command_is_set_then_removed_and_the_reserved_start_is_refused() -> None:
    settings = settings_after(BotSettings(), SetCommand("/Price", "10 USD"), NOW)
    assert settings.custom_commands == {"/price": "10 USD"}
    assert settings_after(settings, RemoveCommand("/price"), NOW).custom_commands == {}
    assert refusal(settings, SetCommand("/start", "hi")) == "command_reserved"
    assert refusal(settings, RemoveCommand("/other")) == "command_unknown"


def test_a_bot_holds_at_most_max_commands() -> None:
    full = BotSettings(custom_commands={f"/c{i}": "x" for i in range(MAX_COMMANDS)})
    assert refusal(full, SetCommand("/one_more", "x")) == "too_many_commands"
    assert settings_after(full, SetCommand("/c0", "y"), NOW).custom_commands["/c0"] == "y"  # replacing fits


def test_blocks_expire_by_the_given_time_and_unblocking_needs_a_block_in_force() -> None:
    blocked = settings_after(BotSettings(), BlockUser(42, 3600), NOW)
    assert blocked.blocked_users == {42: NOW + 3600}
    assert refusal(blocked, BlockUser(43, 10)) == "block_duration"
    later = NOW + 3601
    with pytest.raises(InvalidSetting):
        settings_after(blocked, UnblockUser(42), later)  # expired meanwhile: nothing to unblock
    assert settings_after(blocked, UnblockUser(42), NOW).blocked_users == {}


def test_limits_are_set_and_switched_off_per_action() -> None:
    limited = settings_after(BotSettings(), SetRateLimit("/start", 5, 60), NOW)
    assert limited.rate_limits == {"cmd:/start": RateRule(5, 60.0)}
    cooled = settings_after(limited, SetCooldown("cmd:/start", 10), NOW)
    assert cooled.cooldowns == {"cmd:/start": 10.0}
    assert settings_after(cooled, SetRateLimit("cmd:/start", 0, 0), NOW).rate_limits == {}
    assert refusal(BotSettings(), SetRateLimit("nonsense action", 5, 60)) == "limit_action"
