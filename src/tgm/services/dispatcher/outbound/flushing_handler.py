"""FlushingHandler: a chat drain's handler, then the replies it queued sent at once from the same worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tgm.domain.use_cases.drain_chat import describe_failure
from tgm.grpc_runtime.channels import valid_request_id
from tgm.observability.logging import request_id_var
from tgm.observability.metrics import TELEGRAM_MESSAGES, message_type
from tgm.services.dispatcher.outbound.drain import DrainOutbox
from tgm.services.dispatcher.outbound.queued_outbox import collecting_lanes

logger = logging.getLogger(__name__)


class FlushingHandler:
    """Runs a chat drain's handler, then sends the replies it queued at once, from the same worker: no
    `drain_outbox` message and no second worker hop when the send limiter has a slot.

    A lane the limiter (or a 429, or a failure) holds back gets a `drain_outbox` message after the wait, as any
    queued call does. Sending happens before the update is marked done: if the worker dies in between, the
    update runs again, its calls (same effect ids) are not queued twice, and those already sent are not sent
    again. When the handler fails, what it queued is left to `drain_outbox` messages.
    """

    def __init__(
        self,
        handler: Callable[[], Callable[[Any], Any]],
        drain_outbox: Callable[[], DrainOutbox],
        schedule: Callable[[str, str, float | None], None],
    ) -> None:
        self._handler = handler
        self._drain_outbox = drain_outbox
        self._schedule = schedule

    def __call__(self, envelope: Any) -> Any:
        # The gateway's request id is the current one while this update is handled: the dispatcher's log lines
        # and its calls to the vault and the registry (gRPC metadata) carry it, one id end to end.
        token = request_id_var.set(valid_request_id(getattr(envelope, "request_id", None)))
        try:
            return self._handle(envelope)
        finally:
            request_id_var.reset(token)

    def _handle(self, envelope: Any) -> Any:
        update = getattr(envelope, "update", None)
        if isinstance(update, dict):
            TELEGRAM_MESSAGES.labels(message_type(update)).inc()
        with collecting_lanes() as lanes:
            try:
                outcome = self._handler()(envelope)
            except BaseException:
                for bot_id, chat_key in sorted(lanes):
                    self._schedule(bot_id, chat_key, None)
                raise
        for bot_id, chat_key in sorted(lanes):
            try:
                result = self._drain_outbox()(bot_id, chat_key)
            except Exception as exc:
                logger.warning(
                    "inline send failed; left to the outbox drain",
                    extra={"bot_id": bot_id, "error": describe_failure(exc)},
                )
                self._schedule(bot_id, chat_key, None)
                continue
            if result.run_again_in is not None:
                self._schedule(bot_id, chat_key, result.run_again_in)
            # busy: another drain holds the lane; it looks at the lane again after releasing it
        return outcome
