"""`/limits` words to settings changes, and a bot's own limits shown (HTML-safe, both languages)."""

from __future__ import annotations

import pytest

from tgm.domain.administration.ports import ResetLimits, SetCooldown, SetRateLimit
from tgm.domain.bots import BotSettings, RateRule
from tgm.domain.manager_bot.limits import describe_limits, format_seconds, parse_limits
from tgm.services.dispatcher.presentation.text import as_html


def test_the_admins_words_become_changes() -> None:
    assert parse_limits("") == ()
    assert parse_limits("reset") == (ResetLimits(),)
    assert parse_limits("/start 5/1m") == (SetRateLimit("/start", 5, 60.0),)
    assert parse_limits("msg 100/30s") == (SetRateLimit("msg", 100, 30.0),)
    assert parse_limits("cb:buy cooldown 10s") == (SetCooldown("cb:buy", 10.0),)
    assert parse_limits("/start off") == (SetRateLimit("/start", 0, 0.0), SetCooldown("/start", 0.0))


@pytest.mark.parametrize(
    "words",
    [
        "/start",
        "/start 5",
        "/start ²/1m",
        "/start 999999/1m",
        "/start x/1m",
        "/start 5/soon",
        "/start cooldown",
        "/start cooldown 5x",
        "a b c d",
    ],
)
def test_anything_else_is_not_a_limits_request(words: str) -> None:
    assert parse_limits(words) is None


def test_seconds_are_shown_in_the_largest_whole_unit() -> None:
    assert [format_seconds(s) for s in (1, 59, 60, 90, 3600, 7200, 86_400)] == [
        "1s",
        "59s",
        "1m",
        "90s",
        "1h",
        "2h",
        "1d",
    ]


def test_a_limit_line_reads_as_before_the_presentation_moved() -> None:
    settings = BotSettings(rate_limits={"cmd:/start": RateRule(5, 60.0)}, cooldowns={"cmd:/start": 10.0})
    assert "\n• <code>cmd:/start</code> — 5 per 1m · 10s between two\n" in as_html(describe_limits("b", settings), "en")


@pytest.mark.parametrize("lang", ["en", "pt-br"])
def test_a_bots_own_limits_are_listed_escaped(lang: str) -> None:
    settings = BotSettings(rate_limits={"cmd:/start": RateRule(5, 60.0)}, cooldowns={"cmd:/start": 10.0, "msg": 3.0})
    shown = as_html(describe_limits("shop<b>_bot", settings), lang)
    assert "@shop&lt;b&gt;_bot" in shown and "<b>_bot" not in shown
    start = next(line for line in shown.splitlines() if "cmd:/start" in line)
    assert "5" in start and "1m" in start and "10s" in start
    assert any("<code>msg</code>" in line and "3s" in line for line in shown.splitlines())
    assert as_html(describe_limits("b", BotSettings()), lang) != as_html(describe_limits("b", settings), lang)
