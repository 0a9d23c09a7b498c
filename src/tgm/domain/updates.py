"""The unit of work that crosses the queue: one Telegram update for one bot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    def message(self) -> dict[str, Any] | None:
        msg = self.update.get("message")
        return msg if isinstance(msg, dict) else None

    @property
    def chat_id(self) -> int | None:
        msg = self.message
        if msg is not None and isinstance(msg.get("chat"), dict):
            chat_id = msg["chat"].get("id")
            return chat_id if isinstance(chat_id, int) else None
        callback = self.update.get("callback_query")
        if isinstance(callback, dict) and isinstance(callback.get("message"), dict):
            chat = callback["message"].get("chat")
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                return int(chat["id"])
        return None

    @property
    def text(self) -> str | None:
        msg = self.message
        if msg is None:
            return None
        text = msg.get("text")
        return text if isinstance(text, str) else None

    @property
    def sender_language(self) -> str | None:
        msg = self.message
        sender = msg.get("from") if msg else None
        code = sender.get("language_code") if isinstance(sender, dict) else None
        return code if isinstance(code, str) else None
