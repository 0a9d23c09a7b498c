"""Rate limiter, locks, cooldowns, send limiter, mailbox and dead letters: Redis adapters (shared by
processes) and the in-memory ones pass the same contract; the Redis ones also across processes."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.mailbox import InMemoryChatMailbox, RedisChatMailbox
from tgm.services.dispatcher.adapters import memory
from tgm.services.dispatcher.adapters.dead_letters import RedisDeadLetters
from tgm.services.dispatcher.adapters.redis_abuse import RedisCooldowns, RedisLocks, RedisRateLimiter, RedisSendLimiter

pytestmark = pytest.mark.redis
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    c.flushdb()
    yield c
    c.close()


@pytest.fixture(params=["redis", "memory"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(kind: str, client: redis.Redis, name: str) -> Any:
    if kind == "memory":
        return {
            "rate": memory.InMemoryRateLimiter,
            "locks": memory.InMemoryLocks,
            "cd": memory.InMemoryCooldowns,
            "send": memory.InMemorySendLimiter,
            "mbox": InMemoryChatMailbox,
            "dlq": memory.InMemoryDeadLetters,
        }[name]()
    return {
        "rate": RedisRateLimiter,
        "locks": RedisLocks,
        "cd": RedisCooldowns,
        "send": RedisSendLimiter,
        "mbox": RedisChatMailbox,
        "dlq": RedisDeadLetters,
    }[name](client)


# -- helpers run in child processes (fork) --------------------------------------------------------------


def _hits(args: tuple[str, str, int]) -> list[tuple[bool, bool]]:
    url, key, count = args
    limiter = RedisRateLimiter(redis.Redis.from_url(url))
    out = []
    for _ in range(count):
        decision = limiter.hit(key, 30, 60)
        out.append((decision.allowed, decision.notify))
    return out


def _grab(url: str, key: str, barrier: Any, results: Any, index: int) -> None:
    locks = RedisLocks(redis.Redis.from_url(url))
    locks.acquire("warm-up", 0.001)  # connect and load the script before the race
    barrier.wait(timeout=30)
    results[index] = 1 if locks.acquire(key, 10) is not None else 0


# -- rate limiter ---------------------------------------------------------------------------------------


def test_200_concurrent_requests_from_4_processes_exactly_30_pass(redis_server: RedisServer, client: Any) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        results = pool.map(_hits, [(redis_server.url, "bot-1:42:cmd:/start", 50)] * 4)
    flat = [r for chunk in results for r in chunk]
    assert len(flat) == 200
    assert sum(allowed for allowed, _ in flat) == 30
    assert sum(notify for _, notify in flat) == 1  # told once per window, not 170 times
    other = RedisRateLimiter(client)
    assert other.hit("bot-1:43:cmd:/start", 30, 60).allowed  # another user: unaffected
    assert other.hit("bot-1:42:cmd:/help", 30, 60).allowed  # another action: unaffected


def test_rate_limiter_contract_burst_then_real_wait(kind: str, client: Any) -> None:
    limiter = make(kind, client, "rate")
    key = f"b:{uuid.uuid4().hex}:msg"
    decisions = [limiter.hit(key, 5, 10) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False, False]
    assert [d.notify for d in decisions[5:]] == [True, False]
    assert 1.5 <= decisions[5].retry_after_seconds <= 2.0  # 5 per 10 s: the next slot in ~2 s


def test_rate_limiter_frees_a_slot_after_the_interval(kind: str, client: Any) -> None:
    limiter = make(kind, client, "rate")
    key = f"b:{uuid.uuid4().hex}:msg"
    assert [limiter.hit(key, 2, 0.4).allowed for _ in range(3)] == [True, True, False]
    deadline = time.monotonic() + 2
    while not limiter.hit(key, 2, 0.4).allowed:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_relaxed_limit_is_in_force_at_once_not_after_the_stricter_backlog(kind: str, client: Any) -> None:
    limiter = make(kind, client, "rate")
    key = f"b:{uuid.uuid4().hex}:cmd:/price"
    assert [limiter.hit(key, 2, 3600).allowed for _ in range(3)] == [True, True, False]  # 2 per hour
    # Relaxed to 30 per 6 s (one slot every 0.2 s): without the cap the user would wait out the hour's backlog.
    deadline = time.monotonic() + 3
    while not limiter.hit(key, 30, 6).allowed:
        assert time.monotonic() < deadline, "the relaxed limit was not in force within a few intervals"
        time.sleep(0.05)


# -- locks ----------------------------------------------------------------------------------------------


def test_two_processes_racing_for_one_lock_exactly_one_enters(redis_server: RedisServer, client: Any) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        key = f"race:{round_}"
        barrier = ctx.Barrier(2)
        results = ctx.Array("i", [-1, -1])
        procs = [ctx.Process(target=_grab, args=(redis_server.url, key, barrier, results, i)) for i in range(2)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode == 0
        assert sorted(results[:]) == [0, 1]  # both tried (none is -1), exactly one entered


def test_lock_contract_only_the_holder_releases(kind: str, client: Any) -> None:
    locks = make(kind, client, "locks")
    owner = locks.acquire("k", 10)
    assert owner is not None
    assert locks.acquire("k", 10) is None
    assert not locks.release("k", "not-the-owner")
    assert not locks.renew("k", "not-the-owner", 10)
    assert locks.acquire("k", 10) is None  # still held after the failed release
    assert locks.renew("k", owner, 10)
    assert locks.release("k", owner)
    assert not locks.release("k", owner)  # twice: nothing left to release
    assert locks.acquire("k", 10) is not None


def test_lock_contract_expiry_frees_it_and_the_old_holder_cannot_release_the_new(kind: str, client: Any) -> None:
    locks = make(kind, client, "locks")
    old = locks.acquire("k", 0.2)
    assert old is not None
    deadline = time.monotonic() + 3
    new = None
    while new is None:
        assert time.monotonic() < deadline, "the lock never expired"
        new = locks.acquire("k", 10)
        time.sleep(0.02)
    assert not locks.release("k", old)
    assert locks.acquire("k", 10) is None
    assert locks.release("k", new)


# -- cooldowns, send limiter ----------------------------------------------------------------------------


def test_cooldown_contract(kind: str, client: Any) -> None:
    cooldowns = make(kind, client, "cd")
    assert cooldowns.start("b:1:cb:buy", 0.3)
    assert not cooldowns.start("b:1:cb:buy", 0.3)
    assert cooldowns.start("b:2:cb:buy", 0.3)
    deadline = time.monotonic() + 3
    while not cooldowns.start("b:1:cb:buy", 0.3):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_send_limiter_contract_per_chat_and_smoothed_per_bot(kind: str, client: Any) -> None:
    limiter = make(kind, client, "send")  # 30/s per bot, 1/s per chat, windows widened by the 0.1 margin
    assert limiter.acquire("bot", 1) == 0
    wait = limiter.acquire("bot", 1)
    assert 0.5 < wait <= 1.1  # one per second per private chat
    # a second's 30 are spread: at most 8 per quarter window, then the bot waits a little
    assert [limiter.acquire("bot", chat) == 0 for chat in range(2, 10)] == [True] * 7 + [False]
    assert 0 < limiter.acquire("bot", 50) <= 0.3
    assert limiter.acquire("other-bot", 50) == 0  # another bot: its own budget


def test_send_limiter_contract_per_bot_per_second_and_per_group(kind: str, client: Any) -> None:
    if kind == "memory":
        limiter = memory.InMemorySendLimiter(per_bot_per_second=30, margin=0.0)
    else:
        limiter = RedisSendLimiter(client, per_bot_per_second=30, margin=0.0)
    granted = 0
    deadline = time.monotonic() + 3
    started = time.monotonic()
    while time.monotonic() - started < 0.9:  # within one second: never more than 30
        assert time.monotonic() < deadline
        granted += limiter.acquire("bot", 1000 + granted) == 0
    assert 16 <= granted <= 30
    wide = RedisSendLimiter(client, per_bot_per_second=1000) if kind == "redis" else memory.InMemorySendLimiter(1000)
    group = [wide.acquire("g-bot", -100) for _ in range(21)]
    assert all(w == 0 for w in group[:20]) and group[20] > 1  # 20 per minute in a group


# -- mailbox and dead letters ---------------------------------------------------------------------------


def envelope(update_id: int, chat: int = 5) -> UpdateEnvelope:
    update = {"update_id": update_id, "message": {"chat": {"id": chat}, "from": {"id": 9}, "text": "hi"}}
    return UpdateEnvelope("bot-1", update_id, 1.0, f"r{update_id}", update)


def test_mailbox_contract_fifo_and_pop_only_the_head(kind: str, client: Any) -> None:
    box = make(kind, client, "mbox")
    assert box.peek("bot-1", "5") is None
    for i in (1, 2, 3):
        box.push("5", envelope(i))
    assert box.size("bot-1", "5") == 3
    head = box.peek("bot-1", "5")
    assert head.envelope == envelope(1)
    assert box.pop("bot-1", "5", head)
    assert not box.pop("bot-1", "5", head)  # no longer the head: the new head stays
    assert box.peek("bot-1", "5").envelope == envelope(2)
    assert box.size("bot-1", "6") == 0
    assert box.failures("bot-1", "5", 2) == (0, 0.0)
    assert box.record_failure("bot-1", "5", 2, 123.5) == 1
    assert box.record_failure("bot-1", "5", 2, 124.5) == 2
    assert box.failures("bot-1", "5", 2) == (2, 124.5)
    box.clear_failures("bot-1", "5", 2)
    assert box.failures("bot-1", "5", 2) == (0, 0.0)


def test_dead_letters_contract_and_redaction(kind: str, client: Any) -> None:
    store = make(kind, client, "dlq")
    first = store.add("update", {"update_id": 1}, f"RuntimeError: bot{TOKEN} failed", 4, 100.0)
    second = store.add("api_call", {"job_id": "j"}, "ExternalApiFailed: HTTP 503", 3, 200.0)
    listed = store.list()
    assert [d.id for d in listed] == [first, second]
    assert TOKEN not in listed[0].reason and "[REDACTED]" in listed[0].reason
    letter = store.get(first)
    assert letter.kind == "update" and letter.attempts == 4 and letter.payload == {"update_id": 1}
    assert letter.first_failure_at == 100.0 and letter.last_failure_at >= 100.0
    assert store.remove(first) and not store.remove(first)
    assert store.get(first) is None
    assert store.purge() == 1 and store.list() == []


def test_send_limiter_contract_a_429_pauses_every_chat_of_the_bot(kind: str, client: Any) -> None:
    limiter = make(kind, client, "send")
    assert limiter.acquire("bot", 1) == 0
    limiter.pause("bot", 2.0)
    limiter.pause("bot", 0.5)  # a shorter pause never shortens the longer one
    assert 1.0 < limiter.acquire("bot", 2) <= 2.0  # another chat of the same bot waits too
    assert 1.0 < limiter.acquire("bot", None) <= 2.0
    assert limiter.acquire("other-bot", 2) == 0


def test_mailbox_contract_refuses_above_the_cap(kind: str, client: Any) -> None:
    box = InMemoryChatMailbox(max_items=3) if kind == "memory" else RedisChatMailbox(client, max_items=3)
    assert [box.push("5", envelope(i)) for i in range(1, 6)] == [True, True, True, False, False]
    assert box.size("bot-1", "5") == 3
    assert box.push("6", envelope(9, chat=6))  # another chat: its own cap
    head = box.peek("bot-1", "5")
    assert box.pop("bot-1", "5", head) and box.push("5", envelope(7))


def test_redis_dead_letters_are_capped_and_claimed_once(client: Any) -> None:
    store = RedisDeadLetters(client, max_letters=3)
    ids = [store.add("update", {"update_id": i}, "boom", 1, float(i)) for i in range(5)]
    assert [d.id for d in store.list()] == ids[2:]  # the oldest went first
    assert client.hlen("tgm:dlq:items") == 3
    letter = store.claim(ids[3])
    assert letter is not None and letter.payload == {"update_id": 3}
    assert store.claim(ids[3]) is None  # a second replay finds nothing
    store.restore(letter)
    assert store.get(ids[3]) == letter
