"""The embedded (in-memory) abuse adapters do not keep state for every chat they ever saw."""

from __future__ import annotations

from tgm.domain.clock import ManualClock
from tgm.services.dispatcher.adapters.memory import InMemoryCooldowns, InMemorySendLimiter


def test_a_refused_send_leaves_no_empty_window_behind() -> None:
    clock = ManualClock()
    limiter = InMemorySendLimiter(per_bot_per_second=1, per_chat_per_second=1, margin=0.0, clock=clock)
    assert limiter.acquire("bot-1", 1) == 0.0
    assert limiter.acquire("bot-1", 2) > 0  # the bot's window refuses; chat 2 has no hit
    assert ("chat", "bot-1", 2) not in limiter._hits
    assert all(limiter._hits.values())


def test_windows_of_chats_never_seen_again_are_swept() -> None:
    clock = ManualClock()
    limiter = InMemorySendLimiter(per_bot_per_second=1000, per_chat_per_second=1, clock=clock)
    limiter.sweep_at = 6
    for chat in range(1, 6):
        assert limiter.acquire("bot-1", chat) == 0.0
    assert len(limiter._hits) == 6  # one bot window, five chat windows: not past the threshold yet
    clock.advance(120)  # longer than any window, the group one included
    assert limiter.acquire("bot-x", 99) == 0.0
    assert set(limiter._hits) == {("bot", "bot-x"), ("chat", "bot-x", 99)}


def test_expired_cooldowns_are_pruned_at_a_size_threshold() -> None:
    clock = ManualClock()
    cooldowns = InMemoryCooldowns(clock)
    cooldowns.prune_at = 10
    for user in range(10):
        assert cooldowns.start(f"user-{user}", 5)
    clock.advance(6)
    assert cooldowns.start("user-new", 5)
    assert set(cooldowns._values) == {"user-new"}
    assert not cooldowns.start("user-new", 5)  # a live cooldown still holds
