"""Ports only the manager bot uses: how it speaks, conversation state, admin sessions and one-time buttons."""

from __future__ import annotations

from typing import Protocol

from tgm.domain.effects import EffectIds
from tgm.domain.manager_bot.view import Keyboard
from tgm.domain.view import Buttons, Chat, Prerendered, Reply, Text


class ManagerView(Protocol):
    """Shows the manager bot's replies in a chat; how they look (markup, escaping, button shapes) is the adapter's."""

    def say(self, chat: Chat, reply: Reply, keyboard: Keyboard | None = None) -> None: ...

    def edit(self, chat: Chat, message_id: int, reply: Reply, buttons: Buttons | None = None) -> None:
        """Replaces the text (and the buttons) of a message the manager bot sent."""
        ...

    def send_file(self, chat: Chat, filename: str, content: bytes, mime_type: str, caption: Text) -> None: ...

    def delete(self, chat: Chat, message_id: int, if_refused: Text) -> None:
        """Deletes a message; raises TelegramRequestFailed when refused at once. A queued adapter learns of a
        refusal only later and then says `if_refused` itself."""
        ...

    def broadcast_body(self, text: str, entities: object) -> Prerendered:
        """The admin's message (Telegram's text and its formatting `entities`) as a broadcast's body, in the look it is
        stored and sent in: the preview shows it, and every subscriber gets it unchanged."""
        ...

    def answer_button(
        self, manager_id: str, query_id: str, lang: str | None, notice: Text | None = None, *, effects: EffectIds
    ) -> None:
        """Acknowledges a button press, with a short notice for the presser when there is one. `effects`: the
        update's (the press)."""
        ...


class ConversationStore(Protocol):
    """What the manager bot waits for from one user in one chat ("awaiting token", …), with a TTL."""

    def get(self, chat_id: int, user_id: int) -> str | None: ...

    def set(self, chat_id: int, user_id: int, state: str, ttl_seconds: int) -> None: ...

    def clear(self, chat_id: int, user_id: int) -> None: ...


class AdminSessions(Protocol):
    """An admin's session: fresh while they kept using the manager bot within the TTL."""

    def is_fresh(self, user_id: int) -> bool: ...

    def touch(self, user_id: int, ttl_seconds: int) -> None: ...


class UsedButtons(Protocol):
    """Buttons that act once: a destructive button's token is spent on its first press (issue 11, item 8)."""

    def use_once(self, token_id: str, ttl_seconds: int) -> bool:
        """True the first time `token_id` is used within `ttl_seconds` (the token's own lifetime), else False."""
        ...
