"""Keyboards as Telegram's reply_markup: inline buttons with their signed callback data, the "create a bot" button."""

from __future__ import annotations

from typing import Any

from tgm.domain.manager_bot.view import CreateBotKeyboard, Keyboard
from tgm.domain.view import Buttons
from tgm.services.dispatcher.presentation.text import as_plain

# Telegram echoes it back with the bot the user created (Bot API 9.6 managed bots); the manager offers one such button.
MANAGED_BOT_REQUEST_ID = 1


def reply_markup(keyboard: Keyboard | None, lang: str | None) -> dict[str, Any] | None:
    if keyboard is None:
        return None
    if isinstance(keyboard, Buttons):
        rows = [[{"text": as_plain(b.label, lang), "callback_data": b.data} for b in row] for row in keyboard.rows]
        return {"inline_keyboard": rows}
    if isinstance(keyboard, CreateBotKeyboard):
        button = {
            "text": as_plain(keyboard.label, lang),
            "request_managed_bot": {"request_id": MANAGED_BOT_REQUEST_ID},
        }
        return {"keyboard": [[button]], "resize_keyboard": True, "one_time_keyboard": True}
    return {"remove_keyboard": True}
