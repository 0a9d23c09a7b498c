"""A Dramatiq middleware that times every message an actor processes and counts its outcome (Prometheus)."""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq

from tgm.observability.metrics import ACTOR_DURATION, ACTOR_MESSAGES


class ActorMetrics(dramatiq.Middleware):
    """`tgm_actor_duration_seconds{actor}` and `tgm_actor_messages_total{actor,outcome}` (ok, failed, skipped).

    A message is processed from start to end on one worker thread, so its start time is kept thread-local."""

    def __init__(self) -> None:
        self._local = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._local.started = time.perf_counter()

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        actor = str(message.actor_name)
        started = getattr(self._local, "started", None)
        if started is not None:
            ACTOR_DURATION.labels(actor).observe(time.perf_counter() - started)
            self._local.started = None
        ACTOR_MESSAGES.labels(actor, "ok" if exception is None else "failed").inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._local.started = None
        ACTOR_MESSAGES.labels(str(message.actor_name), "skipped").inc()
