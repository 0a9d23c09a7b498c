"""What a bot says, before anyone decides how it looks: catalogue keys with their values, and buttons as actions with
their signed data. The dispatcher renders these for Telegram (src/tgm/services/dispatcher/presentation/); nothing here
knows HTML or Bot API shapes (docs/adr/007). Shared by the manager bot, the CAPTCHA, the inbox and the broadcasts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.effects import EffectIds


@dataclass(frozen=True)
class Chat:
    """Where a reply goes: a bot's chat with someone, in their language (None: the default)."""

    bot_id: str
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
    """Text that already is a message's text in the look it is sent in: a broadcast's body (stored formatted, so the
    preview is what subscribers get), or a message's text as Telegram showed it, sent back unchanged."""

    text: str


Value = str | int | float | Text | Joined
Reply = Text | Joined | Prerendered


@dataclass(frozen=True)
class Button:
    """A button under a message: its label (catalogue text, or data such as a CAPTCHA option's emoji), what pressing
    it does, and the signed data that says so (CallbackTokens: bound to the presser and the chat; only the dispatcher
    holds the key)."""

    label: Text | str
    action: CallbackAction
    data: str


@dataclass(frozen=True)
class Buttons:
    """Rows of buttons under the message."""

    rows: tuple[tuple[Button, ...], ...]

    @classmethod
    def of(cls, rows: Sequence[Sequence[Button]]) -> Buttons:
        return cls(tuple(tuple(row) for row in rows))


class ChatView(Protocol):
    """Shows a hosted bot's own messages in one of its chats (the CAPTCHA's, the inbox's); how they look (markup,
    escaping, keyboards) is the adapter's. Each call goes out under the chat's next effect id."""

    def say(self, chat: Chat, reply: Reply, buttons: Buttons | None = None) -> None: ...

    def edit(self, chat: Chat, message_id: int, reply: Reply, buttons: Buttons | None = None) -> None:
        """Replaces the text (and the buttons) of a message the bot sent."""
        ...

    def answer_button(self, chat: Chat, query_id: str, notice: Text | None = None) -> None:
        """Acknowledges a button press in the chat, with a short notice for the presser when there is one."""
        ...
