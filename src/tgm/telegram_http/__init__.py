"""The Telegram Bot API over HTTP (the TelegramApi port's real adapter)."""

from tgm.telegram_http.client import HttpTelegramApi

__all__ = ["HttpTelegramApi"]
