"""The unit of work that crosses the queue: one Telegram update for one bot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tgm.domain.telegram_update import TelegramUpdate, parse_update

MAX_UPDATE_BYTES = 256 * 1024


@dataclass(frozen=True)
class UpdateEnvelope:
    """One Telegram update as received by the gateway; carries ids, never a token."""

    bot_id: str
    update_id: int
    received_at: float
    request_id: str
    update: dict[str, Any]
    # Manager bot only: vault ciphertexts (base64) of token-shaped text, replaced by [sealed:N] in `update`.
    sealed_texts: tuple[str, ...] = ()

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "bot_id": self.bot_id,
            "update_id": self.update_id,
            "received_at": self.received_at,
            "request_id": self.request_id,
            "update": self.update,
        }
        if self.sealed_texts:
            message["sealed_texts"] = list(self.sealed_texts)
        return message

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> UpdateEnvelope:
        return cls(
            bot_id=str(data["bot_id"]),
            update_id=int(data["update_id"]),
            received_at=float(data["received_at"]),
            request_id=str(data["request_id"]),
            update=dict(data["update"]),
            sealed_texts=tuple(str(item) for item in data.get("sealed_texts") or ()),
        )

    @property
    def view(self) -> TelegramUpdate:
        """The update, read once (src/tgm/domain/telegram_update.py); raises MalformedUpdate for a malformed one."""
        # Cached by hand, not functools.cached_property: that one takes a lock on every read in Python 3.11, and
        # the webhook reads the view on every request. Two threads racing here parse twice, to the same result.
        view: TelegramUpdate | None = self.__dict__.get("_view")
        if view is None:
            view = parse_update(self.update)
            object.__setattr__(self, "_view", view)  # frozen: the view is derived from `update`, never a field
        return view

    @property
    def message(self) -> dict[str, Any] | None:
        """A new message's object (not an edit's, not the one a button was under)."""
        view = self.view
        return view.message if view.is_message else None

    @property
    def chat_id(self) -> int | None:
        """The chat of a message, an edit or a button press (the message the button was under)."""
        return self.view.chat_id

    @property
    def text(self) -> str | None:
        """A new message's text: edits and button presses carry no command."""
        view = self.view
        return view.text if view.is_message else None
