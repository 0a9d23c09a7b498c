"""An offline Telegram Bot API server for development and tests (never imported by services)."""

from tgm.tools.telegram_emulator.app import create_app
from tgm.tools.telegram_emulator.server import EmulatorServer

__all__ = ["EmulatorServer", "create_app"]
