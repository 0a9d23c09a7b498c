"""A worker killed in the middle of an update, and Telegram's real 429s, with `serve` worker processes on real Redis.

Timing on a shared, noisy machine: everything polls with deadlines; only lower bounds on time are asserted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import Harness, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

COMMANDS = {f"/m{i}": f"reply {i}" for i in range(1, 7)}

# Takeover timing: the dead worker's chat lock expires (CHAT_LOCK_TTL_SECONDS) before Dramatiq gives its
# unacked drain message back (BROKER_HEARTBEAT_TIMEOUT_MS; maintenance every 50 ms), so the
# redelivered drain finds the chat free.
TAKEOVER_ENV = {
    "CHAT_LOCK_TTL_SECONDS": "3",
    "BROKER_HEARTBEAT_TIMEOUT_MS": "6000",
    "BROKER_MAINTENANCE_INTERVAL_MS": "50",
}


def log_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def drained(harness: Harness) -> bool:
    keys = harness.client.keys
    return not keys("tgm:mbox:*") and not keys("tgm:obox:*")


def test_a_worker_killed_mid_update_leads_to_one_reply_and_the_chat_keeps_its_order(harness: Harness) -> None:
    bot = harness.bot(COMMANDS)
    chat = 7301
    harness.open_chat(bot, chat)
    [doomed] = harness.workers.start(1, [bot], harness.emulator_url, TEST_SLOW_UPDATE_TEXT="/m2", **TAKEOVER_ENV)

    harness.send(bot, chat, "/m1")
    wait_until(lambda: harness.replies(bot, chat) == ["reply 1"], 60, "the first reply", interval=0.2)

    # /m2: the handler queues its reply, then hangs before the update is marked done.
    slow = harness.send(bot, chat, "/m2")
    marker = f"tgm:test:slow:{bot['bot_id']}:{slow.update_id}"
    wait_until(lambda: bool(harness.client.exists(marker)), 60, "the slow handler", interval=0.1)
    # The user already has the reply; the update is still at the head of the chat's mailbox (not done).
    wait_until(lambda: len(harness.replies(bot, chat)) >= 2, 60, "the slow update's reply", interval=0.2)
    assert harness.client.llen(f"tgm:mbox:{bot['bot_id']}:{chat}") == 1

    [survivor] = harness.workers.start(1, [bot], harness.emulator_url, **TAKEOVER_ENV)
    proc, _ = harness.workers.procs[doomed]
    proc.kill()  # SIGKILL: no cleanup, no ack, the chat lock stays until its TTL
    proc.wait(timeout=30)

    for i in range(3, 7):
        harness.send(bot, chat, f"/m{i}")
    wait_until(lambda: len(harness.replies(bot, chat)) >= 6, 120, "the later replies", interval=0.2)
    wait_until(lambda: drained(harness), 60, "empty mailboxes and outboxes", interval=0.2)

    logs = harness.workers.log_text()[-4000:]
    assert harness.replies(bot, chat) == [f"reply {i}" for i in range(1, 7)], logs
    sends = [c for c in harness.control.calls(bot["telegram_bot_id"]) if c["method"] == "sendMessage"]
    assert len(sends) == 6, logs
    # The survivor ran the dead worker's update again (the same effect ids: its reply was not queued twice).
    _, survivor_log = harness.workers.procs[survivor]
    handled = [
        r
        for r in log_records(survivor_log)
        if r.get("message") == "update handled" and r.get("update_id") == slow.update_id
    ]
    assert len(handled) == 1, logs


def test_a_real_429_is_honoured_and_every_message_arrives_once(harness: Harness) -> None:
    # Telegram (the emulator) allows 1 message/s per private chat; the dispatcher's own limiter is set loose,
    # so its sends run into real 429s with `parameters.retry_after`.
    harness.control._call("PUT", "/flood", json={"enabled": True, "per_bot_per_second": 30, "per_chat_per_second": 1})
    bot = harness.bot({f"/m{i}": f"reply {i}" for i in range(1, 6)})
    harness.workers.start(2, [bot], harness.emulator_url, OUTBOUND_PER_CHAT_PER_SECOND="50", OUTBOUND_WINDOW_MARGIN="0")
    chats = [7401, 7402, 7403]
    for chat in chats:
        harness.open_chat(bot, chat)
    for i in range(1, 6):
        for chat in chats:
            harness.send(bot, chat, f"/m{i}")
    total = 5 * len(chats)
    wait_until(lambda: harness.sent_count() >= total, 180, f"{total} sends", interval=0.2)
    wait_until(lambda: drained(harness), 60, "empty mailboxes and outboxes", interval=0.2)

    logs = harness.workers.log_text()
    for chat in chats:  # every message exactly once, in order
        assert harness.replies(bot, chat) == [f"reply {i}" for i in range(1, 6)], logs[-3000:]

    calls = [c for c in harness.control.calls(bot["telegram_bot_id"]) if c["method"] == "sendMessage"]
    per_chat: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for call in calls:
        per_chat[int(call["params"]["chat_id"])].append((float(call["at"]), str(call["params"]["text"])))
    refused = 0
    retry_after = 1.0  # the emulator's windows here are all 1 s: every 429 says retry_after = 1 (checked below)
    for chat, seq in per_chat.items():
        seq.sort()
        # A refused call is sent again later with the same text: the accepted one is the last of its text.
        last_index = {text: index for index, (_, text) in enumerate(seq)}
        assert len(last_index) == 5, (chat, seq)
        for index, (at, text) in enumerate(seq):
            if last_index[text] == index:
                continue
            refused += 1
            # The chat's next call is that same message again, no earlier than retry_after after the 429
            # (1 ms of slack: the emulator's float clock vs Redis' millisecond expiry of the pause).
            next_at, next_text = seq[index + 1]
            assert next_text == text, (chat, seq)
            assert next_at >= at + retry_after - 0.001, (chat, text, at, next_at)
    print(f"flood: {refused} refused (429) of {len(calls)} sendMessage calls")
    assert refused >= 1, "no 429 happened: the test proves nothing"

    # The dispatcher saw each 429 (and its retry_after) and rescheduled instead of failing.
    told = [
        r
        for _, log in harness.workers.procs
        for r in log_records(log)
        if r.get("message") == "Telegram said 429; rescheduling"
    ]
    assert len(told) == refused, logs[-3000:]
    assert {float(r["retry_after"]) for r in told} == {retry_after}
    assert not harness.client.keys("tgm:dlq:*"), "nothing went to the dead letters"
