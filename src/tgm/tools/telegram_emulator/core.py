"""The emulator's state and Bot API semantics, independent of HTTP.

Everything runs on one asyncio event loop (the server's), so no locks are needed: methods here never
await between reading and writing state.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import secrets
import string
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tgm.domain.clock import SystemClock
from tgm.domain.ports import Clock
from tgm.tools.telegram_emulator.errors import ApiError, bad_request
from tgm.tools.telegram_emulator.flood import FloodControl
from tgm.tools.telegram_emulator.html_check import check_html
from tgm.tools.telegram_emulator.telemetry import Telemetry

TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-"
_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
MAX_TEXT = 4096

# Methods that put a bot's message into a chat: each success is a "sent" event on the timeline.
MESSAGE_METHODS = frozenset({"sendMessage", "editMessageText", "sendDocument"})

# Update types delivered when allowed_updates is empty (the real server's default).
NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def mask_token(token: str) -> str:
    """What may appear in logs instead of a token: its bot id only."""
    bot_id, sep, _ = token.partition(":")
    return f"{bot_id}:***" if sep else "***"


def new_token(bot_id: int) -> str:
    return f"{bot_id}:" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(35))


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart/form-data request (sendDocument's `document`)."""

    filename: str
    content_type: str
    data: bytes


MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # the Bot API's upload limit


def _logged(value: Any) -> Any:
    """A call's parameter as the call log keeps it: an upload by name and size (the log stays JSON)."""
    if isinstance(value, UploadedFile):
        return {"file_name": value.filename, "file_size": len(value.data)}
    return value


@dataclass
class StoredMessage:
    message_id: int
    from_bot: bool
    text: str
    plain_text: str
    date: int
    sender: dict[str, Any]
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    link_preview_options: dict[str, Any] | None = None
    deleted: bool = False
    edited: bool = False
    edit_date: int | None = None
    # A service message's own field, e.g. {"managed_bot_created": {"bot": User}}; such messages have no text.
    service: dict[str, Any] | None = None
    # A sent document: the Bot API's Document object, and the file's bytes (the control view shows them base64).
    document: dict[str, Any] | None = None
    document_data: bytes | None = None
    # The message this one replies to (a user's reply in the chat).
    reply_to_message_id: int | None = None

    def control_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "message_id": self.message_id,
            "from_bot": self.from_bot,
            "text": self.text,
            "plain_text": self.plain_text,
            "date": self.date,
            "deleted": self.deleted,
            "edited": self.edited,
        }
        shown = ("parse_mode", "reply_markup", "link_preview_options", "edit_date", "service", "reply_to_message_id")
        for name in shown:
            value = getattr(self, name)
            if value is not None:
                view[name] = value
        if self.document is not None:
            view["document"] = {**self.document, "content_base64": base64.b64encode(self.document_data or b"").decode()}
        return view


@dataclass
class ChatState:
    id: int
    type: str
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    title: str | None = None
    blocked: bool = False
    messages: list[StoredMessage] = field(default_factory=list)
    next_message_id: int = 1

    def as_api(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": self.type}
        for name in ("title", "username", "first_name", "last_name"):
            value = getattr(self, name)
            if value is not None:
                chat[name] = value
        return chat

    def find(self, message_id: int) -> StoredMessage | None:
        # Ids are handed out 1, 2, 3... and appended in that order, so the id is (nearly always) the position.
        if 0 < message_id <= len(self.messages):
            message = self.messages[message_id - 1]
            if message.message_id == message_id:
                return message
        for message in self.messages:
            if message.message_id == message_id:
                return message
        return None


@dataclass
class WebhookState:
    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] = field(default_factory=list)
    max_connections: int = 40
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class PendingUpdate:
    update_id: int
    chat_key: int
    payload: dict[str, Any]


@dataclass
class BotState:
    id: int
    username: str
    first_name: str
    token: str
    can_manage_bots: bool = False
    manager_id: int | None = None
    owner: dict[str, Any] | None = None
    next_update_id: int = field(default_factory=lambda: random.randint(10**8, 9 * 10**8))
    webhook: WebhookState = field(default_factory=WebhookState)
    queues: dict[int, deque[PendingUpdate]] = field(default_factory=dict)
    chats: dict[int, ChatState] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    callback_queries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def pending_count(self) -> int:
        return sum(len(queue) for queue in self.queues.values())


# -- parameter coercion (values arrive as JSON values, or as strings from forms and query strings) --


def _int(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise bad_request(f"{name} is empty" if name != "message_id" else "message identifier is not specified")
        return None
    if isinstance(value, bool):
        raise bad_request(f"invalid {name} specified")
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        raise bad_request(f"invalid {name} specified") from None


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).lower() in ("true", "1")


def _json(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        if value == "":
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None
    return value


def _str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)


class Emulator:
    """All bots, chats and updates. `on_update` is called when an update is queued for a bot."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.flood = FloodControl(self.clock)
        self.bots: dict[int, BotState] = {}
        self.on_update: Callable[[BotState, PendingUpdate], None] = lambda bot, update: None
        self.telemetry = Telemetry()
        # Bumped on every change the chat page shows (messages, edits, deletions, bots, callback answers);
        # `on_change` wakes its event streams. A counter and a no-op call: nothing on the hot path when nobody watches.
        self.version = 0
        self.on_change: Callable[[], None] = lambda: None
        # Injected failures (fault tests): Bot API method (lowercase) → how many of its next calls answer 500, and
        # after how long (a delay longer than the client's timeout is a timeout, the call not performed).
        self.failures: dict[str, int] = {}
        self.failure_delays: dict[str, float] = {}
        self._callback_ids = itertools.count(random.randint(10**15, 9 * 10**15))
        # Built once: looking handlers up through dir() on every call was an O(attributes) scan per request.
        self._handlers: dict[str, Callable[[BotState, dict[str, Any]], Any]] = {
            name[2:].lower(): getattr(self, name) for name in dir(self) if name.startswith("m_")
        }

    def reset(self) -> None:
        self.bots.clear()
        self.flood.reset()
        self.telemetry.clear()
        self.failures.clear()
        self.failure_delays.clear()
        self.changed()

    def changed(self) -> None:
        """Something the chat page shows changed: a new version, and its event streams are woken."""
        self.version += 1
        self.on_change()

    def fail_next(self, method: str, count: int, delay_seconds: float = 0.0) -> dict[str, int]:
        """The next `count` calls of `method` answer 500 Internal Server Error without doing anything (as Telegram
        does when it is in trouble), after `delay_seconds` (longer than the client waits: a timeout); 0 clears.
        Returns every pending injection."""
        if count > 0:
            self.failures[method.lower()] = count
            self.failure_delays[method.lower()] = max(0.0, delay_seconds)
        else:
            self.failures.pop(method.lower(), None)
            self.failure_delays.pop(method.lower(), None)
        return dict(self.failures)

    def now(self) -> int:
        return int(self.clock.now().timestamp())

    # -- control side --------------------------------------------------------------------------------

    def create_bot(self, username: str, first_name: str | None = None, *, can_manage_bots: bool = False) -> BotState:
        if any(bot.username.lower() == username.lower() for bot in self.bots.values()):
            raise bad_request("username is already taken")
        bot_id = random.randint(10**9 + 1, 10**10 - 1)
        while bot_id in self.bots:
            bot_id = random.randint(10**9 + 1, 10**10 - 1)
        bot = BotState(
            id=bot_id,
            username=username,
            first_name=first_name or username,
            token=new_token(bot_id),
            can_manage_bots=can_manage_bots,
        )
        self.bots[bot_id] = bot
        self.changed()
        return bot

    def bot(self, bot_id: int) -> BotState:
        bot = self.bots.get(bot_id)
        if bot is None:
            raise ApiError(404, "Not Found: no such bot")
        return bot

    def bot_by_token(self, token: str) -> BotState:
        if not TOKEN_SHAPE.fullmatch(token):
            raise ApiError(404, "Not Found")
        bot_id = int(token.split(":", 1)[0]) if len(token.split(":", 1)[0]) < 19 else -1
        bot = self.bots.get(bot_id)
        if bot is None or not secrets.compare_digest(bot.token.encode(), token.encode()):
            raise ApiError(401, "Unauthorized")
        return bot

    def users(self) -> list[dict[str, Any]]:
        """Every user who wrote to a bot in a private chat (the chat page's user picker), by id; the newest
        message's names and language win, as Telegram sends the current ones with each update."""
        found: dict[int, tuple[int, dict[str, Any]]] = {}
        for bot in self.bots.values():
            for chat in bot.chats.values():
                if chat.type != "private":
                    continue
                for message in reversed(chat.messages):
                    if not message.from_bot and message.sender.get("id") == chat.id:
                        if chat.id not in found or found[chat.id][0] < message.date:
                            found[chat.id] = (message.date, message.sender)
                        break
        return [
            {key: value for key, value in sender.items() if key != "is_bot"} for _, (_, sender) in sorted(found.items())
        ]

    def user_chats(self, user_id: int) -> list[dict[str, Any]]:
        """The private chats of one user, one per bot, the most recent first: what the page's chat list shows."""
        chats: list[dict[str, Any]] = []
        for bot in self.bots.values():
            chat = bot.chats.get(user_id)
            if chat is None or chat.type != "private":
                continue
            last = next((m for m in reversed(chat.messages) if not m.deleted), None)
            chats.append(
                {
                    "bot_id": bot.id,
                    "username": bot.username,
                    "first_name": bot.first_name,
                    "message_count": len(chat.messages),
                    "last_date": last.date if last else None,
                    "last_text": (last.plain_text[:120] if last else ""),
                    "last_from_bot": last.from_bot if last else None,
                }
            )
        chats.sort(key=lambda item: item["last_date"] or 0, reverse=True)
        return chats

    def revoke(self, bot: BotState) -> None:
        bot.token = new_token(bot.id)  # the old one stops working; nobody is told the new one

    def _chat_for_user(
        self, bot: BotState, user: dict[str, Any], chat_id: int | None, chat_type: str | None
    ) -> ChatState:
        chat_id = user["id"] if chat_id is None else chat_id
        chat = bot.chats.get(chat_id)
        if chat is None:
            kind = chat_type or ("private" if chat_id > 0 else "group")
            if kind == "private":
                chat = ChatState(
                    id=chat_id,
                    type=kind,
                    first_name=user.get("first_name"),
                    last_name=user.get("last_name"),
                    username=user.get("username"),
                )
            else:
                chat = ChatState(id=chat_id, type=kind, title=f"Group {chat_id}")
            bot.chats[chat_id] = chat
        return chat

    def user_message(
        self,
        bot: BotState,
        user: dict[str, Any],
        text: str,
        chat_id: int | None = None,
        chat_type: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> tuple[int | None, int]:
        sender = {"id": user["id"], "is_bot": False, "first_name": user.get("first_name") or "User"}
        for name in ("last_name", "username", "language_code"):
            if user.get(name):
                sender[name] = user[name]
        chat = self._chat_for_user(bot, sender, chat_id, chat_type)
        replied = chat.find(reply_to_message_id) if reply_to_message_id is not None else None
        if reply_to_message_id is not None and (replied is None or replied.deleted):
            raise bad_request("message to be replied not found")
        message = StoredMessage(
            message_id=self._next_message_id(chat),
            from_bot=False,
            text=text,
            plain_text=text,
            date=self.now(),
            sender=sender,
            reply_to_message_id=reply_to_message_id,
        )
        chat.messages.append(message)
        payload: dict[str, Any] = {
            "message_id": message.message_id,
            "from": sender,
            "chat": chat.as_api(),
            "date": message.date,
            "text": text,
        }
        if replied is not None:
            # As Telegram: the replied-to Message, without its own reply_to_message.
            payload["reply_to_message"] = self._message_api(bot, chat, replied)
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            payload["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(command.encode("utf-16-le")) // 2}
            ]
        update_id = self.queue_update(bot, "message", payload, chat.id)
        self.changed()
        return update_id, message.message_id

    def user_callback(
        self, bot: BotState, user: dict[str, Any], chat_id: int, message_id: int, data: str
    ) -> tuple[int | None, str]:
        sender = {"id": user["id"], "is_bot": False, "first_name": user.get("first_name") or "User"}
        for name in ("last_name", "username", "language_code"):
            if user.get(name):
                sender[name] = user[name]
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        stored = chat.find(message_id)
        if stored is None or stored.deleted:
            raise bad_request("message not found")
        query_id = str(next(self._callback_ids))
        bot.callback_queries[query_id] = {"id": query_id, "chat_id": chat_id, "message_id": message_id, "data": data}
        payload = {
            "id": query_id,
            "from": sender,
            "message": self._message_api(bot, chat, stored),
            "chat_instance": str(abs(hash((bot.id, chat_id)))),
            "data": data,
        }
        update_id = self.queue_update(bot, "callback_query", payload, chat_id)
        self.changed()
        return update_id, query_id

    def create_managed_bot(
        self, manager: BotState, user: dict[str, Any], username: str, first_name: str | None
    ) -> tuple[BotState, int | None]:
        if not manager.can_manage_bots:
            raise bad_request("the bot can't manage bots")
        bot = self.create_bot(username, first_name)
        bot.manager_id = manager.id
        owner = {"id": user["id"], "is_bot": False, "first_name": user.get("first_name") or "User"}
        for name in ("last_name", "username", "language_code"):
            if user.get(name):
                owner[name] = user[name]
        bot.owner = owner
        # Like Telegram: a service message in the creator's chat with the manager bot, then the `managed_bot` update.
        chat = self._chat_for_user(manager, owner, None, "private")
        service = {"managed_bot_created": {"bot": bot.as_user()}}
        message = StoredMessage(
            message_id=self._next_message_id(chat),
            from_bot=False,
            text="",
            plain_text="",
            date=self.now(),
            sender=owner,
            service=service,
        )
        chat.messages.append(message)
        payload = {"message_id": message.message_id, "from": owner, "chat": chat.as_api(), "date": message.date}
        self.queue_update(manager, "message", {**payload, **service}, chat.id)
        update_id = self.queue_update(manager, "managed_bot", {"user": owner, "bot": bot.as_user()}, owner["id"])
        self.changed()
        return bot, update_id

    def transfer_managed_bot(self, manager: BotState, bot_id: int, user: dict[str, Any]) -> tuple[BotState, int | None]:
        """The managed bot gets a new owner (done in Telegram); the manager bot hears it as a `managed_bot` update."""
        bot = self.bots.get(bot_id)
        if bot is None or bot.manager_id != manager.id:
            raise bad_request("the bot is not managed by this bot")
        owner = {"id": user["id"], "is_bot": False, "first_name": user.get("first_name") or "User"}
        for name in ("last_name", "username", "language_code"):
            if user.get(name):
                owner[name] = user[name]
        bot.owner = owner
        update_id = self.queue_update(manager, "managed_bot", {"user": owner, "bot": bot.as_user()}, owner["id"])
        return bot, update_id

    def queue_update(self, bot: BotState, kind: str, payload: dict[str, Any], chat_key: int) -> int | None:
        """Stores an update for delivery; None when allowed_updates filters it out."""
        allowed = bot.webhook.allowed_updates
        if (allowed and kind not in allowed) or (not allowed and kind in NOT_DEFAULT_UPDATES):
            return None
        update_id = bot.next_update_id
        bot.next_update_id += 1
        pending = PendingUpdate(update_id=update_id, chat_key=chat_key, payload={"update_id": update_id, kind: payload})
        bot.queues.setdefault(chat_key, deque()).append(pending)
        self.telemetry.update_created(bot.id, chat_key, update_id)
        self.on_update(bot, pending)
        return update_id

    def drop_pending(self, bot: BotState) -> None:
        bot.queues.clear()

    # -- Bot API side --------------------------------------------------------------------------------

    def call(self, bot: BotState, method: str, params: dict[str, Any]) -> Any:
        handler = self._handlers.get(method.lower())
        name = handler.__name__.removeprefix("m_") if handler is not None else method
        at = self.clock.now().timestamp()  # sub-second, for flood-control checks
        shown = {key: _logged(value) for key, value in params.items()}
        record = {"method": name, "params": shown, "date": int(at), "at": at, "known": handler is not None}
        bot.calls.append(record)
        self.telemetry.api_calls[name] += 1
        if handler is None:
            raise ApiError(404, "Not Found")
        left = self.failures.get(name.lower(), 0)
        if left > 0:
            self.failures[name.lower()] = left - 1
            record["failed"] = 500
            failure = ApiError(500, "Internal Server Error")
            failure.delay_seconds = self.failure_delays.get(name.lower(), 0.0)
            raise failure
        result = handler(bot, params)
        if name in MESSAGE_METHODS and isinstance(result, dict):
            self.telemetry.record("sent", bot.id, result["chat"]["id"], None, name)
        if not name.startswith("get"):  # sends, edits, deletions, callback answers, webhook changes
            self.changed()
        return result

    def m_getMe(self, bot: BotState, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **bot.as_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
            "can_manage_bots": bot.can_manage_bots,
        }

    def m_setWebhook(self, bot: BotState, params: dict[str, Any]) -> bool:
        url = _str(params, "url") or ""
        if url and not re.match(r"^https?://[^/\s]+", url):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = _str(params, "secret_token")
        if secret is not None and secret != "" and not _SECRET_SHAPE.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        allowed = _json(params, "allowed_updates")
        if allowed is not None and not (isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)):
            raise bad_request("can't parse allowed updates")
        max_connections = _int(params, "max_connections", required=False) or 40
        if not 1 <= max_connections <= 100:
            raise bad_request("invalid max_connections specified")
        if _bool(params, "drop_pending_updates"):
            self.drop_pending(bot)
        hook = bot.webhook
        if url != hook.url:
            hook.last_error_date = None
            hook.last_error_message = None
        hook.url = url
        hook.secret_token = secret or None
        if allowed is not None:
            hook.allowed_updates = list(allowed)
        hook.max_connections = max_connections
        hook.ip_address = "127.0.0.1" if url else None
        return True

    def m_deleteWebhook(self, bot: BotState, params: dict[str, Any]) -> bool:
        if _bool(params, "drop_pending_updates"):
            self.drop_pending(bot)
        bot.webhook.url = ""
        bot.webhook.secret_token = None
        bot.webhook.ip_address = None
        return True

    def m_getWebhookInfo(self, bot: BotState, params: dict[str, Any]) -> dict[str, Any]:
        hook = bot.webhook
        info: dict[str, Any] = {
            "url": hook.url,
            "has_custom_certificate": False,
            "pending_update_count": bot.pending_count(),
        }
        if hook.url:
            info["max_connections"] = hook.max_connections
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        if hook.allowed_updates:
            info["allowed_updates"] = list(hook.allowed_updates)
        return info

    def _chat(self, bot: BotState, params: dict[str, Any]) -> ChatState:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in bot.chats.values() if c.username and f"@{c.username}" == raw), None)
        else:
            chat_id = _int(params, "chat_id")
            chat = bot.chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            raise bad_request("chat not found")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _text(self, params: dict[str, Any]) -> tuple[str, str, str | None]:
        text = _str(params, "text") or ""
        if not text.strip():
            raise bad_request("message text is empty")
        parse_mode = _str(params, "parse_mode") or None
        plain = text
        if parse_mode is not None:
            mode = parse_mode.lower()
            if mode == "html":
                plain = check_html(text)
            elif mode not in ("markdown", "markdownv2"):
                raise bad_request(f"unsupported parse_mode {parse_mode}")
        if len(plain) > MAX_TEXT:
            raise bad_request("message is too long")
        return text, plain, parse_mode

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        markup = _json(params, "reply_markup")
        if markup is not None and not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if markup is not None and "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not button.get("text"):
                        raise bad_request("can't parse inline keyboard button: Text buttons are unallowed")
                    data = button.get("callback_data")
                    if data is not None and len(str(data).encode()) > 64:
                        raise bad_request("BUTTON_DATA_INVALID")
        return markup

    def _next_message_id(self, chat: ChatState) -> int:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        return message_id

    def _message_api(self, bot: BotState, chat: ChatState, message: StoredMessage) -> dict[str, Any]:
        result: dict[str, Any] = {
            "message_id": message.message_id,
            "from": message.sender,
            "chat": chat.as_api(),
            "date": message.date,
        }
        if message.document is not None:
            result["document"] = message.document
            if message.plain_text:
                result["caption"] = message.plain_text
        else:
            result["text"] = message.plain_text
        if message.edit_date is not None:
            result["edit_date"] = message.edit_date
        if message.reply_markup and "inline_keyboard" in message.reply_markup:
            result["reply_markup"] = message.reply_markup
        if message.link_preview_options:
            result["link_preview_options"] = message.link_preview_options
        return result

    def m_sendMessage(self, bot: BotState, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(bot, params)
        text, plain, parse_mode = self._text(params)
        markup = self._markup(params)
        preview = _json(params, "link_preview_options")
        wait = self.flood.check(bot.id, chat.id, chat.type)
        if wait is not None:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        message = StoredMessage(
            message_id=self._next_message_id(chat),
            from_bot=True,
            text=text,
            plain_text=plain,
            date=self.now(),
            sender=bot.as_user(),
            parse_mode=parse_mode,
            reply_markup=markup,
            link_preview_options=preview if isinstance(preview, dict) else None,
        )
        chat.messages.append(message)
        return self._message_api(bot, chat, message)

    def m_sendDocument(self, bot: BotState, params: dict[str, Any]) -> dict[str, Any]:
        """An uploaded file only (multipart/form-data); a file_id or URL is not supported here."""
        chat = self._chat(bot, params)
        upload = params.get("document")
        if not isinstance(upload, UploadedFile):
            raise bad_request("there is no document in the request")
        if not upload.data:
            raise bad_request("file must be non-empty")
        if len(upload.data) > MAX_DOCUMENT_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        caption = _str(params, "caption") or ""
        if len(caption) > 1024:
            raise bad_request("message caption is too long")
        wait = self.flood.check(bot.id, chat.id, chat.type)
        if wait is not None:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        unique = secrets.token_urlsafe(12)
        message = StoredMessage(
            message_id=self._next_message_id(chat),
            from_bot=True,
            text=caption,
            plain_text=caption,
            date=self.now(),
            sender=bot.as_user(),
            document={
                "file_id": f"BQAC{unique}",
                "file_unique_id": unique[:16],
                "file_name": upload.filename,
                "mime_type": upload.content_type,
                "file_size": len(upload.data),
            },
            document_data=upload.data,
        )
        chat.messages.append(message)
        return self._message_api(bot, chat, message)

    def m_editMessageText(self, bot: BotState, params: dict[str, Any]) -> dict[str, Any] | bool:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(bot, params)
        message_id = _int(params, "message_id")
        text, plain, parse_mode = self._text(params)
        markup = self._markup(params)
        message = chat.find(message_id) if message_id is not None else None
        if message is None or message.deleted:
            raise bad_request("message to edit not found")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        if message.plain_text == plain and message.reply_markup == markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        message.text, message.plain_text, message.parse_mode = text, plain, parse_mode
        message.reply_markup = markup
        message.edited = True
        message.edit_date = self.now()
        return self._message_api(bot, chat, message)

    def m_copyMessage(self, bot: BotState, params: dict[str, Any]) -> dict[str, Any]:
        """A copy of a message of one of the bot's chats, sent by the bot; returns a MessageId, as the Bot API does."""
        chat = self._chat(bot, params)
        from_id = _int(params, "from_chat_id")
        source_chat = bot.chats.get(from_id) if from_id is not None else None
        if source_chat is None:
            raise bad_request("chat not found")
        message_id = _int(params, "message_id")
        source = source_chat.find(message_id) if message_id is not None else None
        if source is None or source.deleted:
            raise bad_request("message to copy not found")
        if source.service is not None:
            raise bad_request("message can't be copied")
        markup = self._markup(params)
        wait = self.flood.check(bot.id, chat.id, chat.type)
        if wait is not None:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        copy = StoredMessage(
            message_id=self._next_message_id(chat),
            from_bot=True,
            text=source.text,
            plain_text=source.plain_text,
            date=self.now(),
            sender=bot.as_user(),
            parse_mode=source.parse_mode,
            reply_markup=markup,
            document=source.document,
            document_data=source.document_data,
        )
        chat.messages.append(copy)
        self.telemetry.record("sent", bot.id, chat.id, None, "copyMessage")
        return {"message_id": copy.message_id}

    def m_deleteMessage(self, bot: BotState, params: dict[str, Any]) -> bool:
        chat = self._chat(bot, params)
        message_id = _int(params, "message_id")
        message = chat.find(message_id) if message_id is not None else None
        if message is None or message.deleted:
            raise bad_request("message to delete not found")
        if not message.from_bot and chat.type != "private":
            raise bad_request("message can't be deleted")
        message.deleted = True
        return True

    def m_answerCallbackQuery(self, bot: BotState, params: dict[str, Any]) -> bool:
        query_id = _str(params, "callback_query_id")
        query = bot.callback_queries.get(query_id or "")
        if query is None:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        if query.get("answered"):
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        text = _str(params, "text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        query["answered"] = True
        query["answer_text"] = text
        query["show_alert"] = _bool(params, "show_alert")
        return True

    def _managed(self, bot: BotState, params: dict[str, Any]) -> BotState:
        if not bot.can_manage_bots:
            raise bad_request("the bot can't manage bots")
        user_id = _int(params, "user_id")
        managed = self.bots.get(user_id) if user_id is not None else None
        if managed is None or managed.manager_id != bot.id:
            raise bad_request("bot not found")
        return managed

    def m_getManagedBotToken(self, bot: BotState, params: dict[str, Any]) -> str:
        return self._managed(bot, params).token

    def m_replaceManagedBotToken(self, bot: BotState, params: dict[str, Any]) -> str:
        managed = self._managed(bot, params)
        self.revoke(managed)
        if managed.owner is not None:
            self.queue_update(
                bot, "managed_bot", {"user": managed.owner, "bot": managed.as_user()}, managed.owner["id"]
            )
        return managed.token
