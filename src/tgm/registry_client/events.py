"""Events sent to the registry's trail (RecordEvent): the dispatcher's refused callbacks, broadcasts and inbox
blocks, the operator's key rotations.

`GrpcEventRecorder` makes the call. `BackgroundEventRecorder` hands events to one sender thread through a bounded
queue, so the update that caused one never waits on the registry and a flood of refused callbacks costs at most
the queue's size in memory (further events are dropped and logged). A failed send is logged and forgotten: the
trail is an operator's record, not the vault's audit log, whose rule "a failed audit write refuses the call" does
not apply here; the user's flow goes on.
"""

from __future__ import annotations

import logging
import queue
import threading

import grpc

from tgm.domain.events import Event, EventRecorder
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.registry_client.client import RegistryUnavailable

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_PENDING = 256
_TELEGRAM_ACTOR = "telegram:"


def event_request(event: Event) -> registry_pb2.RecordEventRequest:
    """The request for `event`: a Telegram actor travels as its user id; any other actor is the caller's identity,
    which the registry takes from the certificate (so the actor is not the caller's to choose)."""
    user = event.actor[len(_TELEGRAM_ACTOR) :] if event.actor.startswith(_TELEGRAM_ACTOR) else ""
    return registry_pb2.RecordEventRequest(
        kind=event.kind.value,
        telegram_user_id=int(user) if user.isdigit() else 0,
        bot_id=event.bot_id or "",
        outcome=event.outcome.value,
        details=dict(event.details),
    )


class GrpcEventRecorder:
    """EventRecorder over RecordEvent; RegistryUnavailable when the registry does not take it."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._timeout = timeout_seconds

    def record(self, event: Event) -> None:
        failure: RegistryUnavailable | None = None
        try:
            self._stub.RecordEvent(event_request(event), timeout=self._timeout)
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else None
            failure = RegistryUnavailable(f"RecordEvent failed: {code.name if code else 'UNKNOWN'}")
        if failure is not None:
            raise failure  # outside the except block: no chained RpcError


class BackgroundEventRecorder:
    """Records through `inner` on its own daemon thread (started on the first event); never blocks, never raises."""

    def __init__(self, inner: EventRecorder, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._inner = inner
        self._pending: queue.Queue[Event] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        try:
            self._pending.put_nowait(event)
        except queue.Full:
            logger.warning("event dropped: too many waiting", extra={"kind": event.kind.value})
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_forever, name="event-recorder", daemon=True)
                self._thread.start()

    def _send_forever(self) -> None:
        while True:
            event = self._pending.get()
            try:
                self._inner.record(event)
            except Exception as error:
                logger.warning("event not recorded", extra={"kind": event.kind.value, "error": type(error).__name__})
