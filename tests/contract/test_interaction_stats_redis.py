"""Per-update stats on a real redis-server: the buffer contract (shared with the in-memory one) and two dispatcher
processes' flushers running at once while updates keep coming: every update counted exactly once."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from testbed.redis_server import RedisServer
from tgm.domain.administration.ports import Interaction, InteractionBatchResult
from tgm.domain.clock import ManualClock
from tgm.registry_client.client import RegistryUnavailable
from tgm.services.dispatcher.adapters.interaction_stats import (
    FlusherThread,
    InMemoryInteractionBuffer,
    InteractionFlusher,
    RedisInteractionBuffer,
    SpillingRecorder,
    recorder_for,
)

pytestmark = pytest.mark.redis
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


@pytest.fixture
def prefix() -> str:
    return f"test:stats:{uuid.uuid4().hex}"


@pytest.fixture(params=["redis", "spilling", "memory"])
def make_buffer(request: pytest.FixtureRequest, client: redis.Redis, prefix: str) -> Any:
    def make(clock: ManualClock) -> Any:
        if request.param == "redis":
            return RedisInteractionBuffer(client, prefix=prefix, clock=clock)
        if request.param == "spilling":
            return SpillingRecorder(RedisInteractionBuffer(client, prefix=prefix, clock=clock), clock)
        return InMemoryInteractionBuffer(clock)

    return make


def by_key(items: Sequence[Interaction]) -> dict[tuple[str, int], Interaction]:
    return {(item.bot_id, item.telegram_user_id): item for item in items}


def test_contract_coalesces_per_user(make_buffer: Any) -> None:
    clock = ManualClock(T0)
    buffer = make_buffer(clock)
    buffer.record("a", 7, "de")
    clock.advance(3)
    buffer.record("a", 7, "fr")
    buffer.record("a", 8, None)
    taken = by_key(buffer.take(10))
    assert set(taken) == {("a", 7), ("a", 8)}
    assert (taken[("a", 7)].messages, taken[("a", 7)].language_code) == (2, "fr")
    assert taken[("a", 7)].seen_at == datetime(2026, 3, 1, 12, 0, 3, tzinfo=UTC)
    assert (taken[("a", 8)].messages, taken[("a", 8)].language_code) == (1, None)
    assert buffer.take(10) == []


def test_contract_put_back_merges(make_buffer: Any) -> None:
    clock = ManualClock(T0)
    buffer = make_buffer(clock)
    buffer.record("a", 1, "de")
    taken = buffer.take(10)
    clock.advance(60)
    buffer.record("a", 1, None)
    buffer.record("b", 2, "pt")
    buffer.put_back(taken)
    merged = by_key(buffer.take(10))
    assert merged[("a", 1)].messages == 2
    assert merged[("a", 1)].language_code == "de"
    assert merged[("a", 1)].seen_at == datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
    assert merged[("b", 2)].messages == 1


def test_contract_take_honours_max_bots(make_buffer: Any) -> None:
    buffer = make_buffer(ManualClock(T0))
    for bot in "abcde":
        buffer.record(bot, 1, None)
    first = {item.bot_id for item in buffer.take(2)}
    assert len(first) == 2
    rest = {item.bot_id for item in buffer.take(10)}
    assert first | rest == set("abcde") and not first & rest


def test_concurrent_takes_never_return_the_same_entry(client: redis.Redis, prefix: str) -> None:
    writer = RedisInteractionBuffer(client, prefix=prefix)
    for bot in range(60):
        for user in range(1, 6):
            writer.record(f"bot-{bot}", user, None)
    takers = [RedisInteractionBuffer(redis.Redis(connection_pool=client.connection_pool), prefix=prefix) for _ in "xyz"]
    results: list[list[Interaction]] = [[] for _ in takers]

    def take_all(index: int) -> None:
        while batch := takers[index].take(3):
            results[index].extend(batch)

    threads = [threading.Thread(target=take_all, args=(i,)) for i in range(len(takers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [(item.bot_id, item.telegram_user_id) for result in results for item in result]
    assert len(keys) == 300 and len(set(keys)) == 300


def test_recorder_for_with_redis_is_the_spilling_front_of_the_shared_one(client: redis.Redis) -> None:
    assert isinstance(recorder_for(client), SpillingRecorder)


class Ticks:
    """An injectable monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_spilling_recorder_writes_nothing_until_its_interval_passes(client: redis.Redis, prefix: str) -> None:
    ticks = Ticks()
    shared = RedisInteractionBuffer(client, prefix=prefix)
    front = SpillingRecorder(shared, spill_seconds=0.2, monotonic=ticks)
    front.record("a", 1, "de")
    front.record("a", 1, None)
    front.record("b", 2, None)
    assert shared.pending_count() == 0, "a record inside the interval must not cost a round trip"
    ticks.now += 0.25
    front.record("b", 2, "en")  # this thread spills everything gathered so far, in one call
    assert shared.pending_count() == 2 and front.pending_count() == 2
    taken = by_key(shared.take(10))
    assert (taken[("a", 1)].messages, taken[("a", 1)].language_code) == (2, "de")
    assert (taken[("b", 2)].messages, taken[("b", 2)].language_code) == (2, "en")


def test_spilling_recorder_take_spills_first(client: redis.Redis, prefix: str) -> None:
    front = SpillingRecorder(RedisInteractionBuffer(client, prefix=prefix), spill_seconds=3600, monotonic=Ticks())
    front.record("a", 7, None)
    (entry,) = front.take(10)
    assert (entry.bot_id, entry.telegram_user_id, entry.messages) == ("a", 7, 1)
    assert front.pending_count() == 0


class RefusingShared:
    """A shared buffer whose Redis is down."""

    def __init__(self) -> None:
        self.calls = 0

    def put_back(self, interactions: Sequence[Interaction]) -> None:
        self.calls += 1
        raise redis.ConnectionError("down")

    def pending_count(self) -> int:
        return 0


def test_a_failed_spill_keeps_the_counts_and_does_not_fail_the_record() -> None:
    ticks = Ticks()
    shared = RefusingShared()
    front = SpillingRecorder(shared, spill_seconds=0.2, monotonic=ticks)  # type: ignore[arg-type]
    front.record("a", 1, None)
    ticks.now += 1
    front.record("a", 1, None)  # spills, Redis refuses: no exception, nothing lost
    assert shared.calls == 1
    assert front.pending_count() == 1
    with pytest.raises(redis.ConnectionError):
        front.spill()
    assert front.pending_count() == 1
    (entry,) = front._local.take(10)
    assert entry.messages == 2


class FlakySink:
    """The registry: fails about a third of the calls; counts what it stored."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.stored: dict[tuple[str, int], int] = {}
        self.failed = 0
        self.lock = threading.Lock()

    def record_interactions(self, interactions: Sequence[Interaction]) -> InteractionBatchResult:
        with self.lock:
            if self.random.random() < 0.33:
                self.failed += 1
                raise RegistryUnavailable("registry call failed: UNAVAILABLE")
            for item in interactions:
                key = (item.bot_id, item.telegram_user_id)
                self.stored[key] = self.stored.get(key, 0) + item.messages
        return InteractionBatchResult(stored=len(interactions))


def test_two_processes_flushing_at_once_lose_and_double_nothing(redis_server: RedisServer, prefix: str) -> None:
    # Each "process" has its own client, buffer and flusher thread (every 2 ms: many overlapping flushes).
    clients = [redis.Redis.from_url(redis_server.url) for _ in range(2)]
    # Each process records through its spilling front (spilling every 1 ms: many spills race the takes).
    buffers = [SpillingRecorder(RedisInteractionBuffer(c, prefix=prefix), spill_seconds=0.001) for c in clients]
    sink = FlakySink(seed=8)
    flushers = [
        FlusherThread(InteractionFlusher(buffer, sink, batch_size=16, max_bots=4), 0.002).start() for buffer in buffers
    ]
    expected: dict[tuple[str, int], int] = {}
    lock = threading.Lock()

    def updates(worker: int) -> None:
        rng = random.Random(worker)
        local: dict[tuple[str, int], int] = {}
        for _ in range(1500):
            key = (f"bot-{rng.randrange(8)}", rng.randrange(1, 40))
            buffers[worker % 2].record(key[0], key[1], "en")
            local[key] = local.get(key, 0) + 1
        with lock:
            for key, n in local.items():
                expected[key] = expected.get(key, 0) + n

    workers = [threading.Thread(target=updates, args=(i,)) for i in range(4)]
    try:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        for flusher in flushers:
            flusher.stop()
        leftover = InteractionFlusher(buffers[0], sink)
        deadline = time.monotonic() + 10
        while buffers[0].pending_count() and time.monotonic() < deadline:
            leftover.flush_once()  # the flaky registry may have refused the final flushes
        assert buffers[0].pending_count() == 0
        assert sum(expected.values()) == 6000
        assert sink.stored == expected
        assert sink.failed > 0  # the put-back path really ran
    finally:
        for c in clients:
            c.close()


def test_record_costs_one_round_trip(client: redis.Redis, prefix: str) -> None:
    """MULTI/EXEC in one pipeline: the recorder writes once and never reads before writing."""
    buffer = RedisInteractionBuffer(client, prefix=prefix)
    sent: list[int] = []
    original = client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = original(*args, **kwargs)
        execute = pipe.execute

        def execute_once(*a: Any, **k: Any) -> Any:
            sent.append(len(pipe.command_stack))
            return execute(*a, **k)

        pipe.execute = execute_once
        return pipe

    client.pipeline = counting_pipeline  # type: ignore[method-assign]
    try:
        buffer.record("a", 1, "de")
    finally:
        client.pipeline = original  # type: ignore[method-assign]
    assert sent == [3]
    (entry,) = buffer.take(1)
    assert (entry.bot_id, entry.telegram_user_id, entry.messages, entry.language_code) == ("a", 1, 1, "de")
