"""The manager bot's own keyboards, beside the shared values it says things with (src/tgm/domain/view.py)."""

from __future__ import annotations

from dataclasses import dataclass

from tgm.domain.view import Buttons, Text


@dataclass(frozen=True)
class CreateBotKeyboard:
    """Offers one "create a bot" button (Telegram's managed bots) in place of the keyboard, until pressed or removed."""

    label: Text


@dataclass(frozen=True)
class RemoveKeyboard:
    """Takes away a keyboard offered before (the "create a bot" one)."""


Keyboard = Buttons | CreateBotKeyboard | RemoveKeyboard
