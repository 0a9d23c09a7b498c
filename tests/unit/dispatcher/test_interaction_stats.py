"""Per-update stats off the hot path: the in-memory buffer (coalescing, atomic take, put back) and the flusher
(batches, a failed send keeps the data, the thread's periodic and final flush). Redis: tests/contract."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest

from tgm.domain.administration.ports import Interaction, InteractionBatchResult
from tgm.domain.administration.setting_rules import InvalidSetting
from tgm.domain.clock import ManualClock
from tgm.registry_client.client import RegistryUnavailable
from tgm.services.dispatcher.adapters.interaction_stats import (
    FlusherThread,
    InMemoryInteractionBuffer,
    InteractionFlusher,
    start_flusher,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("condition not met before the deadline")


class Sink:
    """A registry that takes batches, or fails the next `failures` calls (or refuses them)."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.batches: list[list[Interaction]] = []
        self.failures = failures
        self.error = error or RegistryUnavailable("registry call failed: UNAVAILABLE")
        self.calls = 0
        self._lock = threading.Lock()

    def record_interactions(self, interactions: Sequence[Interaction]) -> InteractionBatchResult:
        with self._lock:
            self.calls += 1
            if self.failures:
                self.failures -= 1
                raise self.error
            self.batches.append(list(interactions))
        return InteractionBatchResult(stored=len(interactions))

    def totals(self) -> dict[tuple[str, int], int]:
        with self._lock:
            out: dict[tuple[str, int], int] = {}
            for batch in self.batches:
                for item in batch:
                    key = (item.bot_id, item.telegram_user_id)
                    out[key] = out.get(key, 0) + item.messages
            return out


def by_key(items: Sequence[Interaction]) -> dict[tuple[str, int], Interaction]:
    return {(item.bot_id, item.telegram_user_id): item for item in items}


# ------------------------------------------------------------------------------------------------ buffer


def test_entries_coalesce_per_user_with_the_latest_time_and_language() -> None:
    clock = ManualClock(T0)
    buffer = InMemoryInteractionBuffer(clock)
    buffer.record("bot-a", 7, "de")
    clock.advance(5)
    buffer.record("bot-a", 7, None)  # no language: the last one given stays
    clock.advance(5)
    buffer.record("bot-a", 8, "fr")
    buffer.record("bot-b", 7, "pt")
    taken = by_key(buffer.take(max_bots=10))
    assert set(taken) == {("bot-a", 7), ("bot-a", 8), ("bot-b", 7)}
    assert taken[("bot-a", 7)].messages == 2
    assert taken[("bot-a", 7)].language_code == "de"
    assert taken[("bot-a", 7)].seen_at == datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert taken[("bot-a", 8)].messages == 1


def test_take_removes_what_it_returns_and_honours_max_bots() -> None:
    buffer = InMemoryInteractionBuffer(ManualClock(T0))
    for bot in ("a", "b", "c"):
        buffer.record(bot, 1, None)
    first = buffer.take(max_bots=2)
    assert len({item.bot_id for item in first}) == 2
    rest = buffer.take(max_bots=2)
    assert {item.bot_id for item in first + rest} == {"a", "b", "c"}
    assert buffer.take(max_bots=2) == []


def test_put_back_merges_with_what_was_recorded_since() -> None:
    clock = ManualClock(T0)
    buffer = InMemoryInteractionBuffer(clock)
    buffer.record("a", 1, "de")
    buffer.record("a", 1, "de")
    taken = buffer.take(max_bots=10)
    clock.advance(60)
    buffer.record("a", 1, None)
    buffer.put_back(taken)
    (merged,) = buffer.take(max_bots=10)
    assert merged.messages == 3
    assert merged.seen_at == datetime(2026, 3, 1, 12, 1, tzinfo=UTC)  # the later record's time wins
    assert merged.language_code == "de"  # … and the language survives although the later one had none


# ------------------------------------------------------------------------------------------------ flusher


def test_flush_sends_everything_in_batches_of_the_configured_size() -> None:
    buffer, sink = InMemoryInteractionBuffer(ManualClock(T0)), Sink()
    for user in range(5):
        buffer.record("a", user + 1, None)
    assert InteractionFlusher(buffer, sink, batch_size=2).flush_once() == 5
    assert [len(batch) for batch in sink.batches] == [2, 2, 1]
    assert buffer.pending_count() == 0


def test_a_failed_flush_keeps_the_batch_and_the_next_one_sends_it_once() -> None:
    buffer, sink = InMemoryInteractionBuffer(ManualClock(T0)), Sink(failures=1)
    buffer.record("a", 1, "de")
    buffer.record("a", 1, "de")
    buffer.record("b", 2, None)
    flusher = InteractionFlusher(buffer, sink)
    assert flusher.flush_once() == 0
    assert buffer.pending_count() == 2  # nothing lost
    buffer.record("a", 1, None)  # updates keep being counted while the registry is down
    assert flusher.flush_once() == 2
    assert sink.totals() == {("a", 1): 3, ("b", 2): 1}
    assert flusher.flush_once() == 0
    assert sink.totals() == {("a", 1): 3, ("b", 2): 1}  # not doubled


def test_a_failure_mid_way_puts_back_only_the_unsent_batches() -> None:
    buffer = InMemoryInteractionBuffer(ManualClock(T0))
    for user in range(4):
        buffer.record("a", user + 1, None)

    class FailSecond(Sink):
        def record_interactions(self, interactions: Sequence[Interaction]) -> InteractionBatchResult:
            if self.calls == 1:
                self.calls += 1
                raise RegistryUnavailable("registry call failed: UNAVAILABLE")
            return super().record_interactions(interactions)

    sink = FailSecond()
    assert InteractionFlusher(buffer, sink, batch_size=2).flush_once() == 2
    assert buffer.pending_count() == 2
    assert InteractionFlusher(buffer, sink, batch_size=2).flush_once() == 2
    assert sink.totals() == {("a", n): 1 for n in (1, 2, 3, 4)}


def test_a_batch_the_registry_refuses_is_dropped_not_retried_forever() -> None:
    buffer = InMemoryInteractionBuffer(ManualClock(T0))
    buffer.record("a", 1, None)
    sink = Sink(failures=1, error=InvalidSetting("at most 1000 interactions per call"))
    assert InteractionFlusher(buffer, sink).flush_once() == 0
    assert buffer.pending_count() == 0


# ------------------------------------------------------------------------------------------------ thread


def test_the_thread_flushes_on_each_tick_and_survives_a_crashing_take() -> None:
    ticks: queue.Queue[None] = queue.Queue()
    buffer, sink = InMemoryInteractionBuffer(ManualClock(T0)), Sink()
    crashes = {"left": 1}
    take = buffer.take

    def flaky_take(max_bots: int) -> list[Interaction]:
        if crashes["left"]:
            crashes["left"] -= 1
            raise ConnectionError("redis down")
        return take(max_bots)

    buffer.take = flaky_take  # type: ignore[method-assign]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        ticks.get(timeout=10)

    thread = FlusherThread(InteractionFlusher(buffer, sink), interval_seconds=2.0, sleep=sleep).start()
    buffer.record("a", 1, None)
    ticks.put(None)  # first flush: the take crashes, the thread carries on
    wait_until(lambda: crashes["left"] == 0 and len(slept) >= 2)
    assert sink.totals() == {}
    ticks.put(None)
    wait_until(lambda: sink.totals() == {("a", 1): 1})
    assert thread.alive
    assert set(slept) == {2.0}
    thread.request_stop()
    ticks.put(None)
    thread.stop()
    assert not thread.alive


def test_stop_flushes_once_more_without_waiting_for_the_interval() -> None:
    buffer, sink = InMemoryInteractionBuffer(ManualClock(T0)), Sink()
    stop = start_flusher(buffer, sink, interval_seconds=3600)
    buffer.record("a", 1, "de")
    buffer.record("a", 2, None)
    stop()
    assert sink.totals() == {("a", 1): 1, ("a", 2): 1}
    stop()  # idempotent
    assert sink.calls == 1


@pytest.mark.parametrize("failures", [0, 3])
def test_many_threads_recording_while_flushing_lose_and_double_nothing(failures: int) -> None:
    buffer, sink = InMemoryInteractionBuffer(), Sink(failures=failures)
    ticks: queue.Queue[None] = queue.Queue()
    thread = FlusherThread(InteractionFlusher(buffer, sink, batch_size=7), 0.0, sleep=lambda _s: ticks.get()).start()

    def worker(bot: str) -> None:
        for n in range(200):
            buffer.record(bot, n % 13 + 1, None)
            if n % 50 == 0:
                ticks.put(None)

    workers = [threading.Thread(target=worker, args=(f"bot-{i}",)) for i in range(4)]
    for item in workers:
        item.start()
    for item in workers:
        item.join()
    thread.request_stop()
    ticks.put(None)
    thread.stop()
    assert not thread.alive
    for _ in range(5):  # the registry may still have been failing at the final flush: the data waits, then goes
        if not buffer.pending_count():
            break
        InteractionFlusher(buffer, sink).flush_once()
    totals = sink.totals()
    assert sum(totals.values()) == 800
    assert all(totals[(f"bot-{i}", user)] > 0 for i in range(4) for user in range(1, 14))
