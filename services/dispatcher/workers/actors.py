"""The `handle_update` actor on the `updates` queue (contract: libs/messaging/update_queue.py).

Failures are re-raised as `UpdateHandlingFailed`, built from redacted text and raised outside the
`except` block, so neither the traceback Dramatiq stores in the message on retry nor its logs can
carry a token or the original exception's context. It subclasses `dramatiq.Retry` so the worker
does not log the message itself (its args hold the update body); we log ids instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq

from libs.domain.ports import UpdateDeduplicator
from libs.domain.redaction import redact
from libs.domain.updates import UpdateEnvelope
from libs.messaging.update_queue import HANDLE_UPDATE_ACTOR, UPDATES_QUEUE
from libs.observability.logging import request_id_var

MAX_RETRIES = 5
MIN_BACKOFF_MS = 500
MAX_BACKOFF_MS = 30_000
_MAX_ERROR_CHARS = 500

logger = logging.getLogger("services.dispatcher.actors")

UpdateHandler = Callable[[UpdateEnvelope], Any]


class UpdateHandlingFailed(dramatiq.Retry):
    """A sanitized stand-in for whatever the handler raised: type name and redacted message only."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def sanitized(exc: BaseException) -> UpdateHandlingFailed:
    text = redact(f"{type(exc).__name__}: {exc}")
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + "…"
    return UpdateHandlingFailed(text)


def register_actors(
    broker: dramatiq.Broker,
    handler: Callable[[], UpdateHandler],
    deduplicator: UpdateDeduplicator,
) -> dramatiq.Actor[[dict[str, Any]], None]:
    """Declares `handle_update` on `broker`. `handler()` is called per message (a container provider fits)."""

    def handle_update(envelope: dict[str, Any]) -> None:
        try:
            update = UpdateEnvelope.from_message(envelope)
        except (KeyError, TypeError, ValueError):
            # Retrying cannot fix a malformed message; drop it (nothing from its content is logged).
            logger.error("dropping malformed update message")
            return
        context_token = request_id_var.set(update.request_id)
        ids = {"bot_id": update.bot_id, "update_id": update.update_id, "request_id": update.request_id}
        failure: UpdateHandlingFailed | None = None
        try:
            if deduplicator.already_done(update.bot_id, update.update_id):
                logger.info("update skipped: already handled", extra=ids)
                return
            outcome = handler()(update)
            deduplicator.mark_done(update.bot_id, update.update_id)
            logger.info("update handled", extra={**ids, "action": getattr(outcome, "action", None)})
        except Exception as exc:
            failure = sanitized(exc)
        finally:
            request_id_var.reset(context_token)
        if failure is not None:
            # Raised here, outside the except block: no __context__ pointing at the original exception.
            logger.warning("update failed; will retry", extra={**ids, "error": str(failure)})
            raise failure

    actor: dramatiq.Actor[[dict[str, Any]], None] = dramatiq.actor(
        broker=broker,
        actor_name=HANDLE_UPDATE_ACTOR,
        queue_name=UPDATES_QUEUE,
        max_retries=MAX_RETRIES,
        min_backoff=MIN_BACKOFF_MS,
        max_backoff=MAX_BACKOFF_MS,
    )(handle_update)
    # Dramatiq's per-actor logger prints the message args (the update body) at DEBUG; never let it.
    actor.logger.setLevel(logging.INFO)
    return actor
