"""The dispatcher's container is resolved from Dramatiq worker threads: its singletons must be built once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from dependency_injector import providers
from dramatiq.brokers.stub import StubBroker

from tgm.services.dispatcher.adapters import memory
from tgm.services.dispatcher.container import DispatcherContainer, resolve_for_workers
from tgm.services.dispatcher.settings import DispatcherSettings

THREADS = 16


def _container() -> DispatcherContainer:
    return DispatcherContainer(settings=DispatcherSettings(redis_url=""), broker=StubBroker())


def test_a_singleton_resolved_from_16_threads_at_once_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []

    class SlowLocks(memory.InMemoryLocks):
        def __init__(self, **kwargs: Any) -> None:
            time.sleep(0.05)  # widens the window in which a plain Singleton builds twice
            super().__init__(**kwargs)
            built.append(self)

    monkeypatch.setattr(memory, "InMemoryLocks", SlowLocks)
    container = _container()
    barrier = threading.Barrier(THREADS)
    seen: list[object] = []

    def resolve() -> None:
        barrier.wait()
        seen.append(container.locks())

    threads = [threading.Thread(target=resolve) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(built) == 1
    assert len({id(instance) for instance in seen}) == 1


def test_no_plain_singleton_is_left_in_the_container() -> None:
    plain = [p for p in DispatcherContainer.traverse() if type(p) is providers.Singleton]
    assert plain == []


def test_resolve_for_workers_builds_what_the_actors_use() -> None:
    container = _container()
    try:
        resolve_for_workers(container)
        # Built already: resolving again returns the very same objects.
        assert container.drain_chat() is container.drain_chat()
        assert container.drain_outbox() is container.drain_outbox()
        assert container.run_api_call() is container.run_api_call()
        assert container.mailbox() is container.mailbox()
    finally:
        container.shutdown_resources()


@pytest.mark.parametrize("defer", [False, True])
def test_a_direct_sends_mark_is_written_at_once_unless_deferral_is_asked_for(defer: bool) -> None:
    """DEFER_SENT_MARKS (off by default): on, the mark waits for the update's completion script; off, DirectSend
    writes it right after Telegram accepted the reply, so a worker killed before the completion sends it once."""
    settings = DispatcherSettings(redis_url="redis://127.0.0.1:1/0", defer_sent_marks=defer)
    container = DispatcherContainer(settings=settings, broker=StubBroker())
    assert (container.deferred_sent_marks() is not None) is defer
    assert DispatcherSettings().defer_sent_marks is False
