"""Flood control windows, on a manual clock."""

from __future__ import annotations

from tgm.domain.clock import ManualClock
from tgm.tools.telegram_emulator.flood import FloodControl, FloodSettings


def control(**settings: int) -> tuple[FloodControl, ManualClock]:
    clock = ManualClock()
    return FloodControl(clock, FloodSettings(enabled=True, **settings)), clock


def test_on_by_default_and_off_only_when_asked() -> None:
    flood = FloodControl(ManualClock())
    assert flood.check(1, 2, "private") is None
    assert flood.check(1, 2, "private") == 1
    off = FloodControl(ManualClock(), FloodSettings(enabled=False))
    assert all(off.check(1, 2, "private") is None for _ in range(100))


def test_one_per_second_per_private_chat() -> None:
    flood, clock = control()
    assert flood.check(1, 10, "private") is None
    assert flood.check(1, 10, "private") == 1
    assert flood.check(1, 11, "private") is None  # another chat is not limited
    clock.advance(1.0)
    assert flood.check(1, 10, "private") is None


def test_twenty_per_minute_per_group() -> None:
    flood, clock = control()
    for _ in range(20):
        assert flood.check(1, -5, "supergroup") is None
        clock.advance(1.0)
    assert flood.check(1, -5, "supergroup") == 40
    clock.advance(40.0)
    assert flood.check(1, -5, "supergroup") is None


def test_per_bot_per_second() -> None:
    flood, clock = control(per_bot_per_second=3)
    assert [flood.check(1, chat, "private") for chat in range(4)] == [None, None, None, 1]
    assert flood.check(2, 0, "private") is None  # another bot
    clock.advance(1.0)
    assert flood.check(1, 99, "private") is None
