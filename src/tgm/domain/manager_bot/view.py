"""What the manager bot says, before anyone decides how it looks: catalogue keys with their values, and buttons as
actions with their signed data. The dispatcher renders these for Telegram
(src/tgm/services/dispatcher/manager_bot/presentation/); nothing here knows HTML or Bot API shapes (docs/adr/007).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.effects import EffectIds


@dataclass(frozen=True)
class Chat:
    """Where a reply goes: the manager bot's chat with someone, in their language (None: the default)."""

    manager_id: str
    chat_id: int
    lang: str | None
    effects: EffectIds  # the update being answered: each message sent takes its next id (domain/effects.py)


@dataclass(frozen=True)
class Text:
    """A catalogue text (src/tgm/domain/messages.py) with its values. A plain value is the user's or the registry's
    data and is shown as it is (never read as markup); a Text or Joined value is catalogue text itself."""

    key: str
    values: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class Joined:
    """Parts shown one after the other with `separator` between them (lines of a listing, by default)."""

    parts: Sequence[Value]
    separator: str = "\n"


@dataclass(frozen=True)
class Prerendered:
    """Text that already is a message's formatted text: a broadcast's body (built from Telegram's own formatting by
    src/tgm/domain/broadcast.py, and stored so) and its progress, shared with the broadcast worker."""

    text: str


Value = str | int | float | Text | Joined
Reply = Text | Joined | Prerendered


@dataclass(frozen=True)
class Button:
    """A button under a message: its label, what pressing it does, and the signed data that says so
    (CallbackTokens: bound to the presser and the chat; only the dispatcher holds the key)."""

    label: Text
    action: CallbackAction
    data: str


@dataclass(frozen=True)
class Buttons:
    """Rows of buttons under the message."""

    rows: tuple[tuple[Button, ...], ...]

    @classmethod
    def of(cls, rows: Sequence[Sequence[Button]]) -> Buttons:
        return cls(tuple(tuple(row) for row in rows))


@dataclass(frozen=True)
class CreateBotKeyboard:
    """Offers one "create a bot" button (Telegram's managed bots) in place of the keyboard, until pressed or removed."""

    label: Text


@dataclass(frozen=True)
class RemoveKeyboard:
    """Takes away a keyboard offered before (the "create a bot" one)."""


Keyboard = Buttons | CreateBotKeyboard | RemoveKeyboard
