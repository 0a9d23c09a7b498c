"""The dispatcher's actors (contract: src/tgm/messaging/update_queue.py and src/tgm/services/dispatcher/outbound/).

- `drain_chat(bot_id, chat_key)` on `updates`: runs DrainChat; reschedules itself (Dramatiq `delay`) when
  the chat waits for a retry.
- `handle_update(envelope)` on `updates`: messages from an older gateway; moved into the mailbox.
- `drain_outbox(bot_id, chat_key)` on `outbox`: sends queued Telegram calls within the flood limits.
- `call_external_api(job)` on `external`: one attempt of an external-API command.
- `run_broadcast(broadcast_id)` on `broadcast`: one batch of a broadcast (src/tgm/domain/use_cases/broadcast.py);
  re-enqueues itself until the broadcast is done or cancelled.

Every message carries ids (and for API jobs the user's command text), never a token. Failures are
re-raised as `UpdateHandlingFailed`, built from redacted text and raised outside the `except` block,
so neither the traceback Dramatiq stores in the message on retry nor its logs can carry a token.
It subclasses `dramatiq.Retry` so the worker does not log the message itself; we log ids instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import dramatiq
import redis

from tgm.domain.inbound import chat_key_of
from tgm.domain.ports import ApiCallJob, ChatMailbox
from tgm.domain.redaction import redact
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.broadcast import RunBroadcast
from tgm.domain.use_cases.drain_chat import DrainChat, UpdateHandler
from tgm.domain.use_cases.run_api_call import ApiCallResult, RunApiCall, job_from_message, job_to_message
from tgm.messaging.update_queue import DRAIN_CHAT_ACTOR, HANDLE_UPDATE_ACTOR, UPDATES_QUEUE, drain_chat_message
from tgm.services.dispatcher.outbound.drain import DrainOutbox
from tgm.services.dispatcher.outbound.scheduling import DRAIN_OUTBOX_ACTOR, OUTBOX_QUEUE, drain_outbox_message

__all__ = ["UpdateHandler", "UpdateHandlingFailed", "register_actors", "sanitized"]

MAX_RETRIES = 5
DRAIN_MAX_RETRIES = 10**9  # in effect without limit
MIN_BACKOFF_MS = 500
MAX_BACKOFF_MS = 30_000
_MAX_ERROR_CHARS = 500
EXTERNAL_QUEUE = "external"
BROADCAST_QUEUE = "broadcast"
RUN_BROADCAST_ACTOR = "run_broadcast"
DISPATCHER_QUEUES = (
    UPDATES_QUEUE,
    OUTBOX_QUEUE,
    EXTERNAL_QUEUE,
    BROADCAST_QUEUE,
)  # what the workers consume (metrics, `tgm queue`)
CALL_EXTERNAL_API_ACTOR = "call_external_api"

logger = logging.getLogger(__name__)


class UpdateHandlingFailed(dramatiq.Retry):
    """A sanitized stand-in for whatever failed: type name and redacted message only."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def sanitized(exc: BaseException) -> UpdateHandlingFailed:
    text = redact(f"{type(exc).__name__}: {exc}")
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + "…"
    return UpdateHandlingFailed(text)


class Runtime(Protocol):
    """What the actors need; DispatcherContainer's providers fit (each called per message)."""

    def drain_chat(self) -> DrainChat: ...
    def drain_outbox(self) -> DrainOutbox: ...
    def run_api_call(self) -> RunApiCall: ...
    def mailbox(self) -> ChatMailbox: ...
    def run_broadcast(self) -> RunBroadcast: ...


def api_call_message(job: ApiCallJob) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=EXTERNAL_QUEUE,
        actor_name=CALL_EXTERNAL_API_ACTOR,
        args=(job_to_message(job),),
        kwargs={},
        options={},
    )


class DramatiqApiCallScheduler:
    """ApiCallScheduler: one `call_external_api` message per attempt, `delay` for the backoff."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def schedule(self, job: ApiCallJob, delay_seconds: float = 0.0) -> None:
        delay_ms = max(0, round(delay_seconds * 1000))
        self._broker.enqueue(api_call_message(job), delay=delay_ms or None)


def broadcast_message(broadcast_id: str) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=BROADCAST_QUEUE, actor_name=RUN_BROADCAST_ACTOR, args=(broadcast_id,), kwargs={}, options={}
    )


class DramatiqBroadcastScheduler:
    """BroadcastScheduler: one `run_broadcast` message per batch (ids only, never the text)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def schedule(self, broadcast_id: str, delay_seconds: float = 0.0) -> None:
        self._broker.enqueue(broadcast_message(broadcast_id), delay=_delay_ms(delay_seconds))


def _delay_ms(seconds: float) -> int | None:
    ms = round(seconds * 1000)
    return ms if ms > 0 else None


# While Redis is unreachable a failed message cannot be retried through Dramatiq either (its retry is an enqueue,
# its ack a write: both fail, and the message is left unacked in a live worker's hands, never redelivered; the
# chat's "drain due" flag then holds back new drains — issue 10, found by the Redis restart test). So a worker
# that loses Redis mid-message keeps the message and runs it again once Redis answers (the work is idempotent:
# claims, locks, dedup), for up to this long, then gives it to Dramatiq's retry as any failure.
REDIS_OUTAGE_PATIENCE_SECONDS = 60.0
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _guarded(
    what: str,
    ids: dict[str, Any],
    work: Callable[[], None],
    *,
    patience_seconds: float = REDIS_OUTAGE_PATIENCE_SECONDS,
    sleep: Callable[[float], object] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    failure: UpdateHandlingFailed | None = None
    give_up_at = monotonic() + patience_seconds
    pause = 0.25
    while True:
        try:
            work()
        except _REDIS_DOWN as exc:
            if monotonic() + pause < give_up_at:
                logger.warning(f"{what}: Redis unreachable; retrying in place", extra={**ids, "retry_in": pause})
                sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            failure = sanitized(exc)
        except Exception as exc:
            failure = sanitized(exc)
        break
    if failure is not None:
        # Raised here, outside the except block: no __context__ pointing at the original exception.
        logger.warning(f"{what} failed; will retry", extra={**ids, "error": str(failure)})
        raise failure


def register_actors(broker: dramatiq.Broker, runtime: Runtime) -> dict[str, dramatiq.Actor[..., None]]:
    """Declares the dispatcher's actors on `broker`; providers of `runtime` are called per message."""

    def drain_chat(bot_id: str, chat_key: str) -> None:
        def work() -> None:
            result = runtime.drain_chat()(str(bot_id), str(chat_key))
            if result.run_again_in is not None:
                broker.enqueue(drain_chat_message(bot_id, chat_key), delay=_delay_ms(result.run_again_in))

        _guarded("chat drain", {"bot_id": bot_id}, work)

    def handle_update(envelope: dict[str, Any]) -> None:
        try:
            update = UpdateEnvelope.from_message(envelope)
        except (KeyError, TypeError, ValueError):
            # Retrying cannot fix a malformed message; drop it (nothing from its content is logged).
            logger.error("dropping malformed update message")
            return

        def work() -> None:
            chat_key = chat_key_of(update)
            runtime.mailbox().push(chat_key, update)
            broker.enqueue(drain_chat_message(update.bot_id, chat_key, update.request_id))

        _guarded("legacy update hand-over", {"bot_id": update.bot_id, "update_id": update.update_id}, work)

    def drain_outbox(bot_id: str, chat_key: str) -> None:
        def work() -> None:
            result = runtime.drain_outbox()(str(bot_id), str(chat_key))
            if result.run_again_in is not None:
                broker.enqueue(drain_outbox_message(bot_id, chat_key), delay=_delay_ms(result.run_again_in))

        _guarded("outbox drain", {"bot_id": bot_id}, work)

    def call_external_api(job_message: dict[str, Any]) -> None:
        try:
            job = job_from_message(job_message)
        except (KeyError, TypeError, ValueError):
            logger.error("dropping malformed api call message")
            return

        def work() -> None:
            result: ApiCallResult = runtime.run_api_call()(job)
            if result.status == "retry" and result.retry_in is not None:
                retry = ApiCallJob(**{**job_to_message(job), "attempt": job.attempt + 1})
                broker.enqueue(api_call_message(retry), delay=_delay_ms(result.retry_in))

        _guarded("api call", {"bot_id": job.bot_id, "job_id": job.job_id}, work)

    def run_broadcast(broadcast_id: str) -> None:
        def work() -> None:
            # The next batch is enqueued before this message is acked: a crash in between leaves two messages,
            # which the broadcast's lock serializes and its marks make harmless; never none.
            result = runtime.run_broadcast()(str(broadcast_id))
            if result.run_again_in is not None:
                broker.enqueue(broadcast_message(broadcast_id), delay=_delay_ms(result.run_again_in))

        _guarded("broadcast batch", {"broadcast_id": broadcast_id}, work)

    declared: dict[str, dramatiq.Actor[..., None]] = {}
    for fn, name, queue, retries in (
        # A drain is idempotent and the only thing that moves its lane: it retries until the infrastructure
        # is back (backoff capped at MAX_BACKOFF_MS), so a Redis or vault hiccup never strands a chat.
        (drain_chat, DRAIN_CHAT_ACTOR, UPDATES_QUEUE, DRAIN_MAX_RETRIES),
        (handle_update, HANDLE_UPDATE_ACTOR, UPDATES_QUEUE, MAX_RETRIES),
        (drain_outbox, DRAIN_OUTBOX_ACTOR, OUTBOX_QUEUE, DRAIN_MAX_RETRIES),
        (call_external_api, CALL_EXTERNAL_API_ACTOR, EXTERNAL_QUEUE, MAX_RETRIES),
        (run_broadcast, RUN_BROADCAST_ACTOR, BROADCAST_QUEUE, DRAIN_MAX_RETRIES),
    ):
        options: dict[str, Any] = {"max_retries": retries, "min_backoff": MIN_BACKOFF_MS, "max_backoff": MAX_BACKOFF_MS}
        actor: dramatiq.Actor[..., None] = dramatiq.actor(broker=broker, actor_name=name, queue_name=queue, **options)(
            fn
        )
        # Dramatiq's per-actor logger prints message args at DEBUG; never let it.
        actor.logger.setLevel(logging.INFO)
        declared[name] = actor
    return declared
