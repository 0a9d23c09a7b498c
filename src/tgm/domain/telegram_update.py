"""The one reader of Telegram's Update JSON: `parse_update(raw)` turns it into a typed, checked `TelegramUpdate`.

Every part of tgm that needs a chat, a sender, a text or a button's data asks this view, so the gateway's chat key,
the guard's action, the handler's command and the sealing context all agree on what an update says.

Fields read per kind (Bot API names; every field is optional unless marked *, and a present field of the wrong
type makes the update malformed):

| kind           | chat read from                      | sender | also read                                      |
|----------------|-------------------------------------|--------|------------------------------------------------|
| message        | message.chat.id, .type              | from   | message_id, text, reply_to_message.message_id  |
| edited_message | edited_message.chat.id, .type       | from   | as message                                     |
| callback_query | message.chat.id, .type (if message) | from*  | id*, data, message.message_id, message.text    |
| managed_bot    | none                                | user*  | bot*                                           |
| unsupported    | any other kind (inline_query, channel_post, my_chat_member …): its name only        |

A user object (`from`, `user`, `bot`) is read as `id`* (an integer), `is_bot`, `first_name`, `last_name`,
`username`, `language_code`. Booleans are never accepted as integers. Telegram sends at most one kind per update;
two known kinds in one update are malformed (which one would the handlers believe?).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

# The kinds tgm reads, in no order of preference: more than one in an update is malformed.
KNOWN_KINDS = ("message", "edited_message", "callback_query", "managed_bot")


class UpdateKind(StrEnum):
    MESSAGE = "message"
    EDITED_MESSAGE = "edited_message"
    CALLBACK_QUERY = "callback_query"
    MANAGED_BOT = "managed_bot"
    UNSUPPORTED = "unsupported"


_KINDS = {kind.value: kind for kind in UpdateKind}  # a dict lookup: EnumType.__call__ costs more per update


class MalformedUpdate(ValueError):
    """The update is not what the Bot API sends: not an object, or a field tgm reads has the wrong type."""


# NamedTuples, not frozen dataclasses: as immutable, and built several times faster (a frozen dataclass sets each
# field through object.__setattr__). The gateway builds one view per webhook request.
class TelegramUser(NamedTuple):
    id: int
    is_bot: bool = False
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


class TelegramUpdate(NamedTuple):
    """What one update says, checked. `message` is the payload's message object (the message itself, or the one a
    button was under) for readers that need a field this view does not name; its read fields are already checked."""

    kind: UpdateKind
    update_id: int | None = None
    chat_id: int | None = None
    chat_type: str | None = None
    sender: TelegramUser | None = None
    message_id: int | None = None
    text: str | None = None
    reply_to_message_id: int | None = None
    callback_id: str | None = None
    callback_data: str | None = None
    managed_bot: TelegramUser | None = None
    unsupported_kind: str | None = None  # the first key that is not update_id, for logs; never a label
    message: dict[str, Any] | None = None
    sender_object: dict[str, Any] | None = None  # the raw `from` / `user` object, checked

    @property
    def sender_id(self) -> int | None:
        return self.sender.id if self.sender is not None else None

    @property
    def language(self) -> str | None:
        return self.sender.language_code if self.sender is not None else None

    @property
    def is_private(self) -> bool:
        """A private chat: by its type, else (no type given) by its id — Telegram numbers users' chats positive."""
        if self.chat_type is not None:
            return self.chat_type == "private"
        return self.chat_id is not None and self.chat_id > 0

    @property
    def is_message(self) -> bool:
        """A new message (not an edit): the only kind commands and plain text are answered from."""
        return self.kind is UpdateKind.MESSAGE


def parse_update(raw: object) -> TelegramUpdate:
    """The checked view of one Update; raises MalformedUpdate (and nothing else) on any input."""
    if not isinstance(raw, dict):
        raise MalformedUpdate("an update must be a JSON object")
    update_id = _int(raw, "update_id", "update")
    present = [kind for kind in KNOWN_KINDS if kind in raw]
    if len(present) > 1:
        raise MalformedUpdate(f"an update carries one kind, got {', '.join(present)}")
    if not present:
        other = next((str(key)[:32] for key in raw if key != "update_id"), None)
        return TelegramUpdate(UpdateKind.UNSUPPORTED, update_id=update_id, unsupported_kind=other)
    kind = _KINDS[present[0]]
    body = _object(raw, kind.value, "update", required=True)
    assert body is not None  # required=True raised otherwise
    if kind is UpdateKind.MANAGED_BOT:
        return _managed_bot(body, update_id)
    if kind is UpdateKind.CALLBACK_QUERY:
        return _callback_query(body, update_id)
    return _message(kind, body, update_id)


def _message(kind: UpdateKind, body: dict[str, Any], update_id: int | None) -> TelegramUpdate:
    where = kind.value
    chat_id, chat_type = _chat(body, where)
    sender_object = _object(body, "from", where)
    reply_to = _object(body, "reply_to_message", where)
    return TelegramUpdate(
        kind,
        update_id=update_id,
        chat_id=chat_id,
        chat_type=chat_type,
        sender=_user(sender_object, f"{where}.from") if sender_object is not None else None,
        message_id=_int(body, "message_id", where),
        text=_str(body, "text", where),
        reply_to_message_id=_int(reply_to, "message_id", f"{where}.reply_to_message") if reply_to else None,
        message=body,
        sender_object=sender_object,
    )


def _callback_query(body: dict[str, Any], update_id: int | None) -> TelegramUpdate:
    where = "callback_query"
    callback_id = _str(body, "id", where)
    if callback_id is None:
        raise MalformedUpdate("callback_query.id is required")
    sender_object = _object(body, "from", where, required=True)
    assert sender_object is not None
    held = _object(body, "message", where)  # absent for a button under an inline-mode message
    chat_id, chat_type = _chat(held, f"{where}.message") if held is not None else (None, None)
    return TelegramUpdate(
        UpdateKind.CALLBACK_QUERY,
        update_id=update_id,
        chat_id=chat_id,
        chat_type=chat_type,
        sender=_user(sender_object, f"{where}.from"),
        message_id=_int(held, "message_id", f"{where}.message") if held is not None else None,
        text=_str(held, "text", f"{where}.message") if held is not None else None,
        callback_id=callback_id,
        callback_data=_str(body, "data", where),
        message=held,
        sender_object=sender_object,
    )


def _managed_bot(body: dict[str, Any], update_id: int | None) -> TelegramUpdate:
    user_object = _object(body, "user", "managed_bot", required=True)
    bot_object = _object(body, "bot", "managed_bot", required=True)
    assert user_object is not None and bot_object is not None
    return TelegramUpdate(
        UpdateKind.MANAGED_BOT,
        update_id=update_id,
        sender=_user(user_object, "managed_bot.user"),  # who created the bot: the manager answers them
        managed_bot=_user(bot_object, "managed_bot.bot"),
        sender_object=user_object,
    )


def _chat(body: dict[str, Any], where: str) -> tuple[int | None, str | None]:
    chat = _object(body, "chat", where)
    if chat is None:
        return None, None
    return _int(chat, "id", f"{where}.chat"), _str(chat, "type", f"{where}.chat")


def _user(body: dict[str, Any], where: str) -> TelegramUser:
    user_id = _int(body, "id", where)
    if user_id is None:
        raise MalformedUpdate(f"{where}.id is required")
    is_bot = body.get("is_bot", False)
    if not isinstance(is_bot, bool):
        raise MalformedUpdate(f"{where}.is_bot must be a boolean")
    return TelegramUser(
        id=user_id,
        is_bot=is_bot,
        first_name=_str(body, "first_name", where),
        last_name=_str(body, "last_name", where),
        username=_str(body, "username", where),
        language_code=_str(body, "language_code", where),
    )


def _object(body: dict[str, Any] | None, key: str, where: str, *, required: bool = False) -> dict[str, Any] | None:
    value = body.get(key) if body is not None else None
    if value is None:
        if required:
            raise MalformedUpdate(f"{where}.{key} is required")
        return None
    if not isinstance(value, dict):
        raise MalformedUpdate(f"{where}.{key} must be an object")
    return value


def _int(body: dict[str, Any] | None, key: str, where: str) -> int | None:
    value = body.get(key) if body is not None else None
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedUpdate(f"{where}.{key} must be an integer")
    return value


def _str(body: dict[str, Any] | None, key: str, where: str) -> str | None:
    value = body.get(key) if body is not None else None
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedUpdate(f"{where}.{key} must be a string")
    return value
