"""The dispatcher's handler: manager-bot updates → ManagerBot; other bots → HandleUpdate, then stats.

Stats go to an InteractionRecorder (src/tgm/services/dispatcher/adapters/interaction_stats.py): a Redis or in-memory
counter that a flusher thread sends to the registry in batches, never a registry call per update.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tgm.domain.administration.ports import BotAdmin, InteractionRecorder
from tgm.domain.inbound import sender_of
from tgm.domain.ports import BotDirectory
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.observability.metrics import INBOUND_REFUSED

logger = logging.getLogger(__name__)
_BLOCKED = INBOUND_REFUSED.labels("blocked")
_CAPTCHA = INBOUND_REFUSED.labels("captcha")
# Updates the CAPTCHA kept from the bot (a tap that passed or answered a challenge is not a refusal).
_CAPTCHA_REFUSALS = frozenset({"captcha:challenged", "captcha:pending", "captcha:locked", "captcha:group"})

Handler = Callable[[UpdateEnvelope], Any]


class UpdateRouter:
    def __init__(
        self,
        bots: BotDirectory,
        manager: Callable[[], Handler] | None,
        managed: Handler,
        admin: BotAdmin | None = None,
        recorder: InteractionRecorder | None = None,
    ) -> None:
        self._bots = bots
        self._manager = manager
        self._managed = managed
        # `admin` alone is the legacy path (one RecordInteraction RPC per update), kept until every composition root
        # passes a recorder; with a recorder, admin is not used for stats.
        self._recorder: InteractionRecorder | None = recorder
        if recorder is None and admin is not None:
            self._recorder = _PerUpdateRpc(admin)

    def __call__(self, envelope: UpdateEnvelope) -> Any:
        bot = self._bots.get_bot(envelope.bot_id)
        if bot is not None and bot.is_manager:
            if self._manager is None:
                return HandleOutcome("manager:off")
            return self._manager()(envelope)
        if envelope.sealed_texts:
            return HandleOutcome("ignored:sealed_for_another_bot")  # only the manager bot's updates are sealed
        outcome = self._managed(envelope)
        action = getattr(outcome, "action", None)
        if action == "ignored:blocked":
            _BLOCKED.inc()
            return outcome  # a blocked user is not counted as the bot's user either
        if isinstance(action, str) and action.startswith("captcha:"):
            if action in _CAPTCHA_REFUSALS:
                _CAPTCHA.inc()
            return outcome  # not the bot's user until they pass (then their next update counts)
        # After the answer: even a Redis round trip should not delay the reply (we run in the chat lock).
        self._record(envelope)
        return outcome

    def _record(self, envelope: UpdateEnvelope) -> None:
        """Stats are best effort: a failure never blocks the bot's answer."""
        sender = sender_of(envelope)
        if self._recorder is None or sender is None or not isinstance(sender.get("id"), int) or sender.get("is_bot"):
            return
        language = sender.get("language_code")
        try:
            self._recorder.record(envelope.bot_id, int(sender["id"]), language if isinstance(language, str) else None)
        except Exception as error:
            logger.info("interaction not recorded", extra={"bot_id": envelope.bot_id, "error": type(error).__name__})


class _PerUpdateRpc:
    """The legacy recorder: one RecordInteraction RPC per update (only when no recorder is wired)."""

    def __init__(self, admin: BotAdmin) -> None:
        self._admin = admin

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        self._admin.record_interaction(bot_id, telegram_user_id, language_code)
