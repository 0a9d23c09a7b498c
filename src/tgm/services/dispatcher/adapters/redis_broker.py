"""Dramatiq's Redis broker with queue maintenance by the clock instead of by chance (issue 10).

Maintenance is what gives a dead worker's unacked messages back to their queue (once its heartbeat is older than
`heartbeat_timeout`). Dramatiq runs it inside a broker call on one queue, with a fixed chance per call: on a quiet
queue (a live consumer polls it a few times a second) a 2 % chance means a wait of ~10 s on average and a minute
now and then, and the chats whose drains the dead worker had fetched wait that long. Here each process runs it on
each queue it calls at most once per `maintenance_interval_ms`, and at least that often while it polls the queue:
a dead worker's messages come back within about heartbeat_timeout + interval, under load or idle, for a bounded
cost (one pass per queue per second per process).

Acks ride on the next fetch (issue 8): Dramatiq acks each message with its own round trip from the worker thread
that ran it. Here the ack is noted in memory and sent by the queue's consumer thread in one pipeline with its next
fetch, which comes at once (the ack frees a prefetch slot) or within `worker_timeout` when the queue is idle; a
consumer's close sends what is left. A `kill -9` loses the noted acks: those messages come back after the heartbeat
timeout, as any message a dead worker fetched does, and their drains find nothing left to do (the `external`
queue, whose messages call tenants' APIs, acks at once instead).

This overrides private parts of dramatiq's RedisBroker (`_dispatch`, `_should_do_maintenance`, the dispatch script's
arguments and `_RedisConsumer`); dramatiq is pinned, and tests/contract/test_redis_broker_maintenance.py checks the
behaviour on a real Redis.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis
from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST, RedisBroker, _RedisConsumer
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware, Retries, TimeLimit

DEFAULT_MAINTENANCE_INTERVAL_MS = 1000
# Acked at once, as Dramatiq does: a redelivered `external` message calls the tenant's API again (no done-marker),
# so its acks do not wait. Chat and outbox drains find their work done (dedup and sent marks) and may wait.
IMMEDIATE_ACK_QUEUES = frozenset({"external"})


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
        self._pending_acks: dict[str, deque[str]] = {}
        self._pending_acks_lock = threading.Lock()

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return AckOnFetchConsumer

    def _dispatch(self, command: str) -> Callable[..., Any]:
        dispatch: Callable[..., Any] = super()._dispatch(command)  # type: ignore[no-untyped-call]

        def do_dispatch(queue_name: str, *args: Any) -> Any:
            self._calling.queue = queue_name
            try:
                if command == "fetch":
                    acks = self._take_acks(queue_name)
                    if acks:
                        return self._run_with_acks(queue_name, acks, args)
                return dispatch(queue_name, *args)
            finally:
                self._calling.queue = None

        return do_dispatch

    def defer_ack(self, queue_name: str, redis_message_id: str) -> None:
        """Notes an ack for the queue's next fetch (or its consumer's close)."""
        self._acks_of(queue_name).append(redis_message_id)

    def flush_acks(self, queue_name: str) -> None:
        """Sends the queue's noted acks now, in one pipeline."""
        acks = self._take_acks(queue_name)
        if acks:
            self._run_with_acks(queue_name, acks, None)

    def _acks_of(self, queue_name: str) -> deque[str]:
        pending = self._pending_acks.get(queue_name)
        if pending is None:
            with self._pending_acks_lock:
                pending = self._pending_acks.setdefault(queue_name, deque())
        return pending

    def _take_acks(self, queue_name: str) -> list[str]:
        pending, taken = self._acks_of(queue_name), []
        while pending:
            try:
                taken.append(pending.popleft())
            except IndexError:  # another thread took the last one
                break
        return taken

    def _script_args(self, command: str, queue_name: str, *args: Any) -> list[Any]:
        # The dispatch script's ARGV, as dramatiq's own _dispatch builds it (pinned version).
        return [
            command,
            current_millis(),
            queue_name,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            self._should_do_maintenance(command),
            self._max_unpack_size(),  # type: ignore[no-untyped-call]
            *args,
        ]

    def _run_with_acks(self, queue_name: str, acks: Sequence[str], fetch_args: Sequence[Any] | None) -> Any:
        """The acks, then the fetch when given, in one round trip; the fetch's answer is returned.

        The pipeline calls the script by its SHA: when Redis lost its scripts (a restart), whatever failed is done
        again through dramatiq's own calls, which load the script. When the round trip fails (any error, a timeout
        included) every ack is noted again; an ack that alone fails is noted again and the fetch still answers
        (its messages are already this worker's in Redis: dropping them would strand them in its ack set).
        """
        script = self.scripts["dispatch"]
        pipe = self.client.pipeline(transaction=False)
        for message_id in acks:
            pipe.evalsha(script.sha, 1, self.namespace, *self._script_args("ack", queue_name, message_id))
        if fetch_args is not None:
            pipe.evalsha(script.sha, 1, self.namespace, *self._script_args("fetch", queue_name, *fetch_args))
        try:
            results = pipe.execute(raise_on_error=False)
        except BaseException:
            self._acks_of(queue_name).extendleft(reversed(acks))
            raise
        for message_id, result in zip(acks, results, strict=False):
            if not isinstance(result, Exception):
                continue
            try:
                if not isinstance(result, redis.exceptions.NoScriptError):
                    raise result
                super()._dispatch("ack")(queue_name, message_id)  # type: ignore[no-untyped-call]
            except Exception:
                self._acks_of(queue_name).append(message_id)  # the next fetch or close tries it again
        if fetch_args is None:
            return None
        fetched = results[-1]
        if isinstance(fetched, redis.exceptions.NoScriptError):
            return super()._dispatch("fetch")(queue_name, *fetch_args)  # type: ignore[no-untyped-call]
        if isinstance(fetched, Exception):
            raise fetched
        return fetched

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


class AckOnFetchConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer whose acks wait for its next fetch (see the module docstring)."""

    broker: TimelyMaintenanceRedisBroker

    def ack(self, message: Any) -> None:
        if self.queue_name.partition(".")[0] in IMMEDIATE_ACK_QUEUES:
            super().ack(message)  # type: ignore[no-untyped-call]  # dramatiq's consumer has no annotations
            return
        self.broker.defer_ack(self.queue_name, message.options["redis_message_id"])
        self.queued_message_ids.discard(message.message_id)

    def close(self) -> None:
        try:
            self.broker.flush_acks(self.queue_name)
        except redis.ConnectionError as error:
            raise ConnectionClosed(error) from None  # type: ignore[no-untyped-call]
