"""Issue 10: Telegram (the emulator) answering 500 for a while, with `serve` workers on real Redis: every reply
is retried with a backoff (a dependency in trouble, not a poison update), arrives exactly once and in order per
chat, and nothing goes to the dead letters however many attempts it took."""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import Harness, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

MESSAGES = 4
CHATS = [7601, 7602, 7603]
FAILURES = 7  # all on one reply: more than the outbox's max_attempts (5) for a poison call


def test_telegram_answering_500_delays_replies_and_doubles_none(harness: Harness) -> None:
    bot = harness.bot({f"/m{i}": f"reply {i}" for i in range(1, MESSAGES + 1)})
    for chat in CHATS:
        harness.open_chat(bot, chat)
    harness.workers.start(2, [bot], harness.emulator_url)
    harness.control.fail_next("sendMessage", FAILURES)

    def failed() -> list[dict[str, object]]:
        return [c for c in harness.control.calls(bot["telegram_bot_id"]) if c.get("failed")]

    def replies_sent() -> list[dict[str, object]]:
        calls = harness.control.calls(bot["telegram_bot_id"])
        return [c for c in calls if c["method"] == "sendMessage" and not c.get("failed")]

    # The first reply meets every failure (Telegram in trouble for ~20 s of retries), the others come after.
    harness.send(bot, CHATS[0], "/m1")
    wait_until(lambda: len(failed()) >= FAILURES, 90, "the injected failures", interval=0.2)
    for i in range(1, MESSAGES + 1):
        for chat in CHATS:
            if (i, chat) != (1, CHATS[0]):
                harness.send(bot, chat, f"/m{i}")
        time.sleep(1.1)  # each user about once a second

    total = MESSAGES * len(CHATS)
    wait_until(lambda: len(replies_sent()) >= total, 120, f"{total} replies", interval=0.2)
    logs = harness.workers.log_text()[-4000:]
    assert len(failed()) == FAILURES
    for chat in CHATS:
        assert harness.replies(bot, chat) == [f"reply {i}" for i in range(1, MESSAGES + 1)], logs
    assert len(replies_sent()) == total, "a reply was sent twice"
    assert not harness.client.keys("tgm:dlq:*"), "a dependency in trouble is not a poison call"


def test_telegram_timing_out_delays_replies_and_doubles_none(harness: Harness) -> None:
    """Calls that time out (Telegram answers later than the client waits, having done nothing) are retried."""
    bot = harness.bot({"/m1": "reply 1", "/m2": "reply 2"})
    harness.open_chat(bot, 7701)
    harness.workers.start(1, [bot], harness.emulator_url, TELEGRAM_TIMEOUT_SECONDS="1")
    harness.control.fail_next("sendMessage", 3, delay_seconds=2.5)
    harness.send(bot, 7701, "/m1")
    harness.send(bot, 7701, "/m2")
    wait_until(lambda: harness.replies(bot, 7701) == ["reply 1", "reply 2"], 90, "both replies", interval=0.2)
    calls = harness.control.calls(bot["telegram_bot_id"])
    assert sum(1 for c in calls if c.get("failed")) == 3
    assert sum(1 for c in calls if c["method"] == "sendMessage" and not c.get("failed")) == 2, "none doubled"
    logs = harness.workers.log_text()
    assert "timed out" in logs, logs[-3000:]
    assert not harness.client.keys("tgm:dlq:*")
