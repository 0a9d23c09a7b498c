"""The dispatcher's handler: manager-bot updates → ManagerBot; other bots → HandleUpdate, then stats."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libs.domain.inbound import sender_of
from libs.domain.manager_ports import BotAdmin
from libs.domain.ports import BotDirectory
from libs.domain.updates import UpdateEnvelope
from libs.domain.use_cases.handle_update import HandleOutcome

logger = logging.getLogger("services.dispatcher.manager")

Handler = Callable[[UpdateEnvelope], Any]


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
        outcome = self._managed(envelope)
        # After the answer: a registry call and a DB write should not delay the reply (we run in the chat lock).
        self._record(envelope)
        return outcome

    def _record(self, envelope: UpdateEnvelope) -> None:
        """Stats are best effort: a failure never blocks the bot's answer."""
        sender = sender_of(envelope)
        if self._admin is None or sender is None or not isinstance(sender.get("id"), int) or sender.get("is_bot"):
            return
        language = sender.get("language_code")
        try:
            self._admin.record_interaction(
                envelope.bot_id, int(sender["id"]), language if isinstance(language, str) else None
            )
        except Exception as error:
            logger.info("interaction not recorded", extra={"bot_id": envelope.bot_id, "error": type(error).__name__})
