"""Registering a bot: a sealed token pasted in the chat, or a bot created through Telegram's managed bots."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable

from tgm.domain.administration.ports import Registration
from tgm.domain.errors import BotOwnedByAnotherAdmin, DomainError, InvalidToken, TokenRejected
from tgm.domain.manager_bot.dependencies import Ctx, ctx_for_update
from tgm.domain.manager_bot.registry_calls import RegistryCalls
from tgm.domain.manager_bot.view import RemoveKeyboard
from tgm.domain.redaction import TOKEN_SHAPED
from tgm.domain.sealing import placeholders_in
from tgm.domain.telegram_update import TelegramUpdate
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleOutcome

logger = logging.getLogger(__name__)


class RegistrationCommands(RegistryCalls):
    """/addbot, a pasted (sealed) token and the `managed_bot` update."""

    def _register_from(self, ctx: Ctx, text: str, sealed_texts: tuple[str, ...]) -> HandleOutcome:
        indexes = [i for i in placeholders_in(text) if i < len(sealed_texts)]
        if not indexes or TOKEN_SHAPED.search(text):
            self._say(ctx, "mgr_invalid_token")
            return HandleOutcome("manager:invalid_token", replied=True)
        try:
            ciphertext = base64.b64decode(sealed_texts[indexes[0]], validate=True)
        except (binascii.Error, ValueError):
            self._say(ctx, "mgr_invalid_token")
            return HandleOutcome("manager:invalid_token", replied=True)
        return self._registered(
            ctx, lambda: self._admin.register_sealed(ctx.user_id, ciphertext, ctx.manager_id, ctx.chat_id)
        )

    def _registered(self, ctx: Ctx, register: Callable[[], Registration]) -> HandleOutcome:
        try:
            registration = register()
        except InvalidToken:
            self._say(ctx, "mgr_invalid_token")
            return HandleOutcome("manager:invalid_token", replied=True)
        except TokenRejected:
            self._say(ctx, "mgr_token_rejected")
            return HandleOutcome("manager:token_rejected", replied=True)
        except BotOwnedByAnotherAdmin:
            self._say(ctx, "mgr_owned_by_other")
            return HandleOutcome("manager:owned_by_other", replied=True)
        except DomainError as error:
            logger.warning("registration failed", extra={"error": type(error).__name__})
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        bot = registration.bot
        self._say(ctx, "secret_saved", RemoveKeyboard())
        self._say(ctx, "mgr_refreshed" if registration.refreshed else "mgr_registered", username=bot.username)
        return HandleOutcome("manager:registered", replied=True)

    def _managed_bot(self, envelope: UpdateEnvelope, view: TelegramUpdate) -> HandleOutcome:
        if view.sender is None or view.managed_bot is None:
            return HandleOutcome("manager:ignored")
        user_id, bot_user_id, lang = view.sender.id, view.managed_bot.id, view.sender.language_code
        ctx = ctx_for_update(envelope, user_id, user_id, lang)  # the creator's private chat with the manager bot
        if not self._allowed(user_id):
            self._say(ctx, "mgr_not_allowed")
            return HandleOutcome("manager:not_allowed", replied=True)
        self._sessions.touch(user_id, self._config.session_ttl_seconds)
        return self._registered(ctx, lambda: self._admin.register_managed(user_id, bot_user_id))
