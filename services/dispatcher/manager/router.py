"""The dispatcher's handler: manager-bot updates → ManagerBot; other bots → stats + HandleUpdate."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libs.domain.manager_ports import BotAdmin
from libs.domain.ports import BotDirectory
from libs.domain.updates import UpdateEnvelope
from libs.domain.use_cases.handle_update import HandleOutcome

logger = logging.getLogger("services.dispatcher.manager")

Handler = Callable[[UpdateEnvelope], Any]


def _sender(update: dict[str, Any]) -> dict[str, Any] | None:
    for kind in ("message", "callback_query", "edited_message"):
        body = update.get(kind)
        if isinstance(body, dict) and isinstance(body.get("from"), dict):
            sender: dict[str, Any] = body["from"]
            return sender
    return None


class UpdateRouter:
    def __init__(
        self,
        bots: BotDirectory,
        manager: Callable[[], Handler] | None,
        managed: Handler,
        admin: BotAdmin | None = None,
    ) -> None:
        self._bots = bots
        self._manager = manager
        self._managed = managed
        self._admin = admin

    def __call__(self, envelope: UpdateEnvelope) -> Any:
        bot = self._bots.get_bot(envelope.bot_id)
        if bot is not None and bot.is_manager:
            if self._manager is None:
                return HandleOutcome("manager:off")
            return self._manager()(envelope)
        if envelope.sealed_texts:
            return HandleOutcome("ignored:sealed_for_another_bot")  # only the manager bot's updates are sealed
        self._record(envelope)
        return self._managed(envelope)

    def _record(self, envelope: UpdateEnvelope) -> None:
        """Stats are best effort: a failure never blocks the bot's answer."""
        sender = _sender(envelope.update)
        if self._admin is None or sender is None or not isinstance(sender.get("id"), int) or sender.get("is_bot"):
            return
        language = sender.get("language_code")
        try:
            self._admin.record_interaction(
                envelope.bot_id, int(sender["id"]), language if isinstance(language, str) else None
            )
        except Exception as error:
            logger.info("interaction not recorded", extra={"bot_id": envelope.bot_id, "error": type(error).__name__})
