"""The chat lock stays held while a slow handler runs (renewed by the watchdog), and a holder that lost it
does not mark the update done. The keeper runs on its own thread, as the service wires it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tgm.domain.clock import SystemClock
from tgm.domain.lane import LockKeeper
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.drain_chat import DrainChat, DrainPolicy, lock_key
from tgm.host.lock_keeper import running_lock_keeper
from tgm.messaging.mailbox import InMemoryChatMailbox
from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters, InMemoryLocks, InMemoryUpdateDeduplicator


def envelope(update_id: int) -> UpdateEnvelope:
    update = {"update_id": update_id, "message": {"chat": {"id": 5}, "from": {"id": 9}, "text": "hi"}}
    return UpdateEnvelope("bot-1", update_id, 0.0, "r", update)


@pytest.fixture
def keeper() -> Iterator[LockKeeper]:
    """The process's keeper with its thread, as the dispatcher's container runs it."""
    for runner in running_lock_keeper():
        yield runner.keeper


def make(
    handler: Any, locks: InMemoryLocks, keeper: LockKeeper
) -> tuple[DrainChat, InMemoryChatMailbox, InMemoryUpdateDeduplicator]:
    box, dedup = InMemoryChatMailbox(), InMemoryUpdateDeduplicator()
    drain = DrainChat(
        box,
        locks,
        dedup,
        lambda: handler,
        InMemoryDeadLetters(),
        SystemClock(),
        policy=DrainPolicy(lock_ttl_seconds=0.3),
        keeper=keeper,
    )
    return drain, box, dedup


def test_a_slow_handler_keeps_the_chat_lock(keeper: LockKeeper) -> None:
    locks = InMemoryLocks()
    started, release = threading.Event(), threading.Event()

    def slow(env: UpdateEnvelope) -> None:
        started.set()
        release.wait(30)

    drain, box, dedup = make(slow, locks, keeper)
    box.push("5", envelope(1))
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(drain("bot-1", "5")))
    worker.start()
    assert started.wait(30)
    until = time.monotonic() + 1.2  # four lock TTLs: without renewal the lock would have expired
    while time.monotonic() < until:
        assert locks.acquire(lock_key("bot-1", "5"), 10) is None
        time.sleep(0.02)
    release.set()
    worker.join(30)
    assert result[0].handled == 1 and dedup.already_done("bot-1", 1) and box.size("bot-1", "5") == 0


def test_a_drain_that_lost_the_lock_leaves_the_update_to_the_new_holder(keeper: LockKeeper) -> None:
    locks = InMemoryLocks()
    key = lock_key("bot-1", "5")

    def stolen(env: UpdateEnvelope) -> None:
        with locks._lock:  # the TTL passed and another worker took the chat
            locks._values[key] = ("someone-else", time.monotonic() + 60)

    drain, box, dedup = make(stolen, locks, keeper)
    box.push("5", envelope(1))
    result = drain("bot-1", "5")
    assert result.busy and result.handled == 0
    assert not dedup.already_done("bot-1", 1) and box.size("bot-1", "5") == 1
