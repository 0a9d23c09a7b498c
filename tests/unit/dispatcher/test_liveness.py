"""The dispatcher's liveness probe: alive only while its worker threads and its one lock keeper thread run."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from dramatiq.brokers.stub import StubBroker

from tgm.domain.lane import LockKeeper
from tgm.host.lock_keeper import LockKeeperThread
from tgm.services.dispatcher.__main__ import liveness
from tgm.services.dispatcher.container import DispatcherContainer
from tgm.services.dispatcher.settings import DispatcherSettings


@pytest.fixture
def worker_threads() -> Iterator[list[threading.Thread]]:
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    yield threads
    stop.set()


def test_the_dispatcher_is_dead_once_its_lock_keeper_thread_is(worker_threads: list[threading.Thread]) -> None:
    keeper = LockKeeperThread(LockKeeper())
    keeper.start()
    assert liveness(worker_threads, keeper) == {"worker_threads": True, "lock_keeper": True}
    keeper.stop()
    assert liveness(worker_threads, keeper) == {"worker_threads": True, "lock_keeper": False}


def test_a_keeper_thread_never_started_is_not_alive(worker_threads: list[threading.Thread]) -> None:
    assert liveness(worker_threads, LockKeeperThread(LockKeeper()))["lock_keeper"] is False


def test_every_drain_renews_through_the_keeper_the_probed_thread_runs() -> None:
    container = DispatcherContainer(settings=DispatcherSettings(redis_url=""), broker=StubBroker())
    try:
        runner = container.lock_keeper_thread()
        assert runner.alive
        for drain in (container.drain_chat(), container.drain_outbox(), container.run_broadcast()):
            assert drain._keeper is runner.keeper, type(drain).__name__
    finally:
        container.shutdown_resources()
    assert not runner.alive, "stopped with the container's resources"
