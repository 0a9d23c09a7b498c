"""Ports only the manager bot uses: conversation state, admin sessions and one-time buttons."""

from __future__ import annotations

from typing import Protocol


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
