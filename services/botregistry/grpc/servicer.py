"""RegistryService over gRPC: validates input, runs use cases, maps domain errors to status codes.

The token in RegisterBotRequest never reaches a log line, an error message or an exception chain:
error details are fixed strings and aborts happen outside the `except` blocks.
"""

from __future__ import annotations

import contextlib
import logging
from typing import NoReturn

import grpc

from libs.domain.bots import Bot, BotStatus, BotToken
from libs.domain.errors import (
    BotOwnedByAnotherAdmin,
    InvalidToken,
    TelegramRequestFailed,
    TelegramUnavailable,
    TokenRejected,
    VaultUnavailable,
)
from libs.domain.ports import BotRepository
from libs.domain.use_cases.register_bot import RegisterBot, RegisterBotCommand
from services.botregistry.errors import DuplicateBot
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name

STATUS_TO_PROTO: dict[BotStatus, registry_pb2.BotStatus.ValueType] = {
    BotStatus.PENDING: registry_pb2.BOT_STATUS_PENDING,
    BotStatus.ACTIVE: registry_pb2.BOT_STATUS_ACTIVE,
    BotStatus.DISABLED: registry_pb2.BOT_STATUS_DISABLED,
    BotStatus.DELETED: registry_pb2.BOT_STATUS_DELETED,
    BotStatus.FAILED: registry_pb2.BOT_STATUS_FAILED,
}
PROTO_TO_STATUS: dict[registry_pb2.BotStatus.ValueType, BotStatus] = {v: k for k, v in STATUS_TO_PROTO.items()}

# Fixed, token-free details for each failure the caller can act on.
_REGISTER_ERRORS: tuple[tuple[type[Exception], grpc.StatusCode, str], ...] = (
    (TokenRejected, grpc.StatusCode.UNAUTHENTICATED, "Telegram rejected the token"),
    (BotOwnedByAnotherAdmin, grpc.StatusCode.ALREADY_EXISTS, "this bot is registered by another admin"),
    (TelegramUnavailable, grpc.StatusCode.UNAVAILABLE, "Telegram is unavailable; try again later"),
    (VaultUnavailable, grpc.StatusCode.UNAVAILABLE, "the vault is unavailable; try again later"),
    (TelegramRequestFailed, grpc.StatusCode.FAILED_PRECONDITION, "Telegram refused to set the webhook"),
    (DuplicateBot, grpc.StatusCode.ABORTED, "the bot was registered concurrently; try again"),
)


def bot_to_proto(bot: Bot) -> registry_pb2.Bot:
    return registry_pb2.Bot(
        bot_id=bot.id,
        public_id=bot.public_id,
        owner_id=bot.owner_id,
        telegram_bot_id=bot.telegram_bot_id,
        username=bot.username,
        status=STATUS_TO_PROTO[bot.status],
        welcome_text=bot.settings.welcome_text,
        sealed_token=bot.sealed_token,
        language=bot.settings.language,
    )


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, register_bot: RegisterBot, bots: BotRepository) -> None:
        self._register_bot = register_bot
        self._bots = bots

    def RegisterBot(
        self, request: registry_pb2.RegisterBotRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RegisterBotResponse:
        if request.owner_id <= 0:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "owner_id must be a positive Telegram user id")
        token: BotToken | None = None
        with contextlib.suppress(InvalidToken):
            token = BotToken(request.token)
        if token is None:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "not a bot token")
        failure: tuple[grpc.StatusCode, str] | None = None
        bot: Bot | None = None
        try:
            bot = self._register_bot(RegisterBotCommand(owner_id=request.owner_id, token=token))
        except Exception as error:
            failure = self._classify(error, token)
        if failure is not None or bot is None:
            code, details = failure or (grpc.StatusCode.INTERNAL, "internal error")
            _abort(context, code, details)
        logger.info(
            "bot registered",
            extra={"bot_id": bot.id, "owner_id": bot.owner_id, "telegram_bot_id": bot.telegram_bot_id},
        )
        return registry_pb2.RegisterBotResponse(bot=bot_to_proto(bot))

    @staticmethod
    def _classify(error: Exception, token: BotToken) -> tuple[grpc.StatusCode, str]:
        for error_type, code, details in _REGISTER_ERRORS:
            if isinstance(error, error_type):
                logger.warning(
                    "register bot refused",
                    extra={"error": type(error).__name__, "telegram_bot_id": token.telegram_bot_id},
                )
                return code, details
        # Unexpected: log the class only; its message could quote a URL that carries the token.
        logger.error(
            "register bot failed unexpectedly",
            extra={"error": type(error).__name__, "telegram_bot_id": token.telegram_bot_id},
        )
        return grpc.StatusCode.INTERNAL, "internal error"

    def GetRoute(
        self, request: registry_pb2.GetRouteRequest, context: grpc.ServicerContext
    ) -> registry_pb2.GetRouteResponse:
        bot = self._bots.by_public_id(request.public_id) if request.public_id else None
        if bot is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "no bot with that public_id")
        return registry_pb2.GetRouteResponse(
            bot_id=bot.id,
            status=STATUS_TO_PROTO[bot.status],
            webhook_secret_sha256=bot.webhook_secret_sha256,
            is_manager=bot.is_manager,
        )

    def GetBot(self, request: registry_pb2.GetBotRequest, context: grpc.ServicerContext) -> registry_pb2.GetBotResponse:
        bot = self._bots.get(request.bot_id) if request.bot_id else None
        if bot is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, "no bot with that id")
        return registry_pb2.GetBotResponse(bot=bot_to_proto(bot))

    def ListBots(
        self, request: registry_pb2.ListBotsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListBotsResponse:
        if request.owner_id <= 0:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "owner_id must be a positive Telegram user id")
        bots = self._bots.list_by_owner(request.owner_id)
        return registry_pb2.ListBotsResponse(bots=[bot_to_proto(bot) for bot in bots])
