"""Dramatiq's Redis broker with queue maintenance by the clock instead of by chance (issue 10).

Maintenance is what gives a dead worker's unacked messages back to their queue (once its heartbeat is older than
`heartbeat_timeout`). Dramatiq runs it inside a broker call on one queue, with a fixed chance per call: on a quiet
queue (a live consumer polls it a few times a second) a 2 % chance means a wait of ~10 s on average and a minute
now and then, and the chats whose drains the dead worker had fetched wait that long. Here each process runs it on
each queue it calls at most once per `maintenance_interval_ms`, and at least that often while it polls the queue:
a dead worker's messages come back within about heartbeat_timeout + interval, under load or idle, for a bounded
cost (one pass per queue per second per process).

This overrides two private methods of dramatiq's RedisBroker (`_dispatch`, `_should_do_maintenance`); dramatiq is
pinned, and tests/contract/test_redis_broker_maintenance.py checks the behaviour on a real Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST, RedisBroker
from dramatiq.middleware import Middleware, Retries, TimeLimit

DEFAULT_MAINTENANCE_INTERVAL_MS = 1000


def dispatcher_middleware() -> list[Middleware]:
    """Only the middleware the actors use: Retries (their max_retries/backoff options) and TimeLimit (a hung
    message is interrupted after Dramatiq's default 10 minutes). Dramatiq's default set adds AgeLimit,
    ShutdownNotifications, Callbacks and Pipelines, none used here: each costs a hook call per message phase
    (~0.1 ms of CPU per message in total, measured with a no-op actor)."""
    return [TimeLimit(), Retries()]


class TimelyMaintenanceRedisBroker(RedisBroker):
    def __init__(
        self,
        *args: Any,
        maintenance_interval_ms: int = DEFAULT_MAINTENANCE_INTERVAL_MS,
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._maintenance_interval = maintenance_interval_ms / 1000
        self._monotonic = monotonic
        self._next_maintenance: dict[str, float] = {}
        self._maintenance_lock = threading.Lock()
        self._calling = threading.local()  # the queue of the broker call this thread is making

    def _dispatch(self, command: str) -> Callable[..., Any]:
        dispatch: Callable[..., Any] = super()._dispatch(command)  # type: ignore[no-untyped-call]

        def do_dispatch(queue_name: str, *args: Any) -> Any:
            self._calling.queue = queue_name
            try:
                return dispatch(queue_name, *args)
            finally:
                self._calling.queue = None

        return do_dispatch

    def _should_do_maintenance(self, command: str) -> int:
        queue = getattr(self._calling, "queue", None)
        if command in MAINTENANCE_COMMAND_BLACKLIST or queue is None:
            return 0
        now = self._monotonic()
        with self._maintenance_lock:
            if self._next_maintenance.get(queue, 0.0) > now:
                return 0
            self._next_maintenance[queue] = now + self._maintenance_interval
        return 1
