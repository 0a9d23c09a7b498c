"""`run_broadcast` on a StubBroker with a real Worker: it re-enqueues itself until the runner says it is done, and its
messages carry the broadcast's id only."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from tgm.domain.use_cases.broadcast import BroadcastStep
from tgm.services.dispatcher.workers.actors import (
    BROADCAST_QUEUE,
    DramatiqBroadcastScheduler,
    broadcast_message,
    register_actors,
)

BROADCAST_ID = "5e0c3a52-3c1f-4a8e-9f5e-2a6b1c7d8e90"


class Runner:
    def __init__(self, steps: list[BroadcastStep]) -> None:
        self.steps = steps
        self.calls: list[str] = []

    def __call__(self, broadcast_id: str) -> BroadcastStep:
        self.calls.append(broadcast_id)
        return self.steps.pop(0)


class Runtime:
    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def run_broadcast(self) -> Runner:
        return self._runner

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} is not used here")


def test_run_broadcast_reenqueues_itself_until_the_runner_is_done() -> None:
    broker = StubBroker()
    runner = Runner([BroadcastStep(3, run_again_in=0.0), BroadcastStep(2, run_again_in=0.05), BroadcastStep(1)])
    register_actors(broker, Runtime(runner))  # type: ignore[arg-type]
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        DramatiqBroadcastScheduler(broker).schedule(BROADCAST_ID)
        deadline = time.monotonic() + 10
        while len(runner.calls) < 3:
            assert time.monotonic() < deadline, runner.calls
            time.sleep(0.01)
        broker.join(BROADCAST_QUEUE, timeout=5_000)
        worker.join()
    finally:
        worker.stop()
    assert runner.calls == [BROADCAST_ID] * 3 and runner.steps == []


def test_a_broadcast_message_holds_the_id_and_nothing_else() -> None:
    message = broadcast_message(BROADCAST_ID)
    assert (message.queue_name, message.actor_name, message.args, message.kwargs) == (
        "broadcast",
        "run_broadcast",
        (BROADCAST_ID,),
        {},
    )
