"""The manager bot's identity: registered (or refreshed) at start from MANAGER_BOT_TOKEN.

Owner 0 and is_manager=true; its token is sealed by the vault like any other and its webhook set like any
other bot's (plus the `managed_bot` update). A failure is retried in the background; the registry serves
meanwhile.
"""

from __future__ import annotations

import logging
import threading

from tgm.domain.administration.register_bot import RegisterBot, RegisterBotCommand
from tgm.domain.bots import BotToken
from tgm.domain.errors import DomainError, InvalidToken

logger = logging.getLogger(__name__)
MANAGER_OWNER_ID = 0


def register_manager(register_bot: RegisterBot, token_value: str) -> bool:
    """True when the manager bot is registered and its webhook set."""
    token: BotToken | None = None
    try:
        token = BotToken(token_value)
    except InvalidToken:
        token = None
    if token is None:
        logger.error("MANAGER_BOT_TOKEN is not a bot token; the manager bot is off")
        return True  # retrying cannot fix it
    failure: str | None = None
    try:
        bot = register_bot(RegisterBotCommand(owner_id=MANAGER_OWNER_ID, token=token, is_manager=True))
    except DomainError as error:
        failure = type(error).__name__
    except Exception as error:  # the class only: a message could quote a URL holding the token
        failure = type(error).__name__
    if failure is not None:
        logger.warning(
            "manager bot registration failed", extra={"error": failure, "telegram_bot_id": token.telegram_bot_id}
        )
        return failure == "BotOwnedByAnotherAdmin"  # an admin registered it as an ordinary bot: no retry helps
    logger.info("manager bot ready", extra={"bot_id": bot.id, "username": bot.username})
    return True


def start_manager_registration(
    register_bot: RegisterBot, token_value: str, stop: threading.Event, retry_seconds: float = 5.0
) -> threading.Thread | None:
    if not token_value:
        logger.info("no MANAGER_BOT_TOKEN: the manager bot is off")
        return None
    if register_manager(register_bot, token_value):
        return None

    def retry() -> None:
        while not stop.wait(retry_seconds):
            if register_manager(register_bot, token_value):
                return

    thread = threading.Thread(target=retry, name="manager-registration", daemon=True)
    thread.start()
    return thread
