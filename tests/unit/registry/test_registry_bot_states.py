"""The Bot state machine: every move not in the design's table is refused and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tgm.domain.bots import Bot, BotSettings, BotStatus
from tgm.domain.errors import IllegalTransition

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)

# pending → active ⇄ disabled → deleted, plus failed from pending (docs/DESIGN §3).
# Each method names one edge: activate is the first activation, enable the way back from disabled.
LEGAL: set[tuple[BotStatus, str]] = {
    (BotStatus.PENDING, "activate"),
    (BotStatus.PENDING, "fail"),
    (BotStatus.ACTIVE, "disable"),
    (BotStatus.ACTIVE, "delete"),
    (BotStatus.DISABLED, "enable"),
    (BotStatus.DISABLED, "delete"),
}
MOVES = {
    "activate": BotStatus.ACTIVE,
    "enable": BotStatus.ACTIVE,
    "fail": BotStatus.FAILED,
    "disable": BotStatus.DISABLED,
    "delete": BotStatus.DELETED,
}


def make_bot(status: BotStatus) -> Bot:
    return Bot(
        id="b1",
        public_id="p1",
        owner_id=1,
        telegram_bot_id=42,
        username="x_bot",
        status=status,
        sealed_token=b"sealed",
        webhook_secret_sha256=b"\0" * 32,
        settings=BotSettings(),
        created_at=T0,
        updated_at=T0,
    )


CASES = [(start, move) for start in BotStatus for move in MOVES]


@pytest.mark.parametrize(("start", "move"), CASES, ids=[f"{s.value}-{m}" for s, m in CASES])
def test_each_move_is_allowed_only_if_the_table_says_so(start: BotStatus, move: str) -> None:
    bot = make_bot(start)
    target = MOVES[move]
    if (start, move) in LEGAL:
        getattr(bot, move)(T1)
        assert bot.status is target
        assert bot.updated_at == T1
    else:
        with pytest.raises(IllegalTransition):
            getattr(bot, move)(T1)
        assert bot.status is start
        assert bot.updated_at == T0


def test_terminal_states_admit_no_move() -> None:
    for start in (BotStatus.DELETED, BotStatus.FAILED):
        for move in MOVES:
            with pytest.raises(IllegalTransition):
                getattr(make_bot(start), move)(T1)


def test_only_active_bots_serve_updates() -> None:
    assert [s for s in BotStatus if make_bot(s).serves_updates] == [BotStatus.ACTIVE]
