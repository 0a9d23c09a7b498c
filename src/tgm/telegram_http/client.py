"""The Telegram Bot API over HTTPS: the `TelegramApi` port's real adapter.

The Bot API puts the token in the URL path, so this module is careful that no URL ever escapes it:
urllib3 errors are turned into domain errors raised *outside* the `except` block (no `__context__`
chain back to an urllib3 object that holds the URL), messages name only the method, and urllib3's own
request logging is redacted.

urllib3 (thread-safe pool, keep-alive) rather than httpx: on the dispatcher's hot path a send costs about a
third of the CPU (measured with the emulator, `make bench`); proxies come from the environment as httpx did.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import urllib3

from tgm.domain.bots import BotToken, TelegramBotInfo
from tgm.domain.errors import DomainError, TelegramRequestFailed, TelegramUnavailable, TokenRejected
from tgm.domain.outbound import CopyMessage, EditMessageText, SendDocument, SendMessage
from tgm.domain.ports import SentMessage, WebhookRegistration
from tgm.domain.redaction import redact
from tgm.observability.metrics import TELEGRAM_API_ERRORS

DEFAULT_BASE_URL = "https://api.telegram.org"
_JSON_HEADERS = {"Content-Type": "application/json"}


class _RedactRecords(logging.Filter):
    """urllib3 logs every request line at DEBUG; Bot API URLs carry the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def _install_log_redaction() -> None:
    for name in ("urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactRecords) for f in logger.filters):
            logger.addFilter(_RedactRecords())


@dataclass(frozen=True)
class _Answer:
    """A successful call's result; nothing of the request (no URL) is kept."""

    result: Any


def _pool(base_url: str, timeout_seconds: float, max_connections: int) -> urllib3.PoolManager:
    """A keep-alive pool; through the environment's proxy (HTTPS_PROXY…, NO_PROXY) when one applies."""
    timeout = urllib3.Timeout(total=timeout_seconds)
    options: dict[str, Any] = {"maxsize": max_connections, "block": False, "retries": False, "timeout": timeout}
    parts = urlsplit(base_url)
    proxy = urllib.request.getproxies().get(parts.scheme or "https")
    if proxy and parts.hostname and not urllib.request.proxy_bypass(parts.hostname):
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)


class HttpTelegramApi:
    """Sync Bot API client with a connection pool; safe to share between threads."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = 10.0,
        *,
        max_connections: int = 100,
    ) -> None:
        _install_log_redaction()
        self._base_url = base_url.rstrip("/")
        self._pool = _pool(self._base_url, timeout_seconds, max_connections)
        # Without a proxy every call goes to one host: its connection pool, given the path only, skips PoolManager's
        # URL parsing and pool lookup per call (868k -> 734k instructions per send, callgrind). A proxy needs the
        # whole URL, so calls then go through the manager.
        self._requester: urllib3.PoolManager | urllib3.HTTPConnectionPool = self._pool
        self._target_prefix = self._base_url
        if not isinstance(self._pool, urllib3.ProxyManager):
            # A malformed base URL keeps the manager: each call then fails as before, redacted.
            with contextlib.suppress(Exception):
                self._requester = self._pool.connection_from_url(self._base_url)
                self._target_prefix = urlsplit(self._base_url).path

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> HttpTelegramApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpTelegramApi({self._base_url!r})"

    # -- transport -----------------------------------------------------------------------------------

    def _post(
        self, secret: str, method: str, params: dict[str, Any], upload: tuple[str, str, bytes, str] | None = None
    ) -> _Answer | DomainError:
        """The result, or the error to raise; never raises, so no urllib3 exception (holding the URL) is chained,
        and no frame holding the URL or Telegram's raw answer is left in the caller's traceback. With `upload`
        (field, file name, bytes, MIME type) the call is multipart/form-data, other values as form fields."""
        try:
            target = f"{self._target_prefix}/bot{secret}/{method}"
            if upload is None:
                response = self._requester.request(
                    "POST", target, body=orjson.dumps(params), headers=_JSON_HEADERS, redirect=False
                )
            else:
                field, filename, data, mime = upload
                fields: dict[str, Any] = {
                    key: value if isinstance(value, str) else orjson.dumps(value).decode()
                    for key, value in params.items()
                }
                fields[field] = (filename, data, mime)
                response = self._requester.request("POST", target, fields=fields, encode_multipart=True, redirect=False)
            try:
                body = orjson.loads(response.data)
            except orjson.JSONDecodeError:
                body = None
            if response.status != 200:
                TELEGRAM_API_ERRORS.labels(method, str(response.status)).inc()
            return _interpret(method, response.status, body, response.headers.get("retry-after"))
        except urllib3.exceptions.TimeoutError:
            TELEGRAM_API_ERRORS.labels(method, "0").inc()
            return TelegramUnavailable(f"Telegram {method}: timed out")
        except urllib3.exceptions.HTTPError as exc:
            TELEGRAM_API_ERRORS.labels(method, "0").inc()
            return TelegramUnavailable(f"Telegram {method}: network error ({type(exc).__name__})")
        except Exception as exc:  # e.g. a malformed base URL, whose message is the URL itself
            TELEGRAM_API_ERRORS.labels(method, "0").inc()
            return TelegramUnavailable(f"Telegram {method}: request failed ({type(exc).__name__})")

    def _call(
        self,
        token: BotToken,
        method: str,
        params: dict[str, Any] | None = None,
        upload: tuple[str, str, bytes, str] | None = None,
    ) -> Any:
        kept = {k: v for k, v in (params or {}).items() if v is not None}
        outcome = self._post(token.reveal(), method, kept, upload)
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome.result

    # -- the port ------------------------------------------------------------------------------------

    def get_me(self, token: BotToken) -> TelegramBotInfo:
        user = self._call(token, "getMe")
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise TelegramUnavailable("Telegram getMe: unexpected result")
        return TelegramBotInfo(
            telegram_bot_id=user["id"],
            username=str(user.get("username") or ""),
            first_name=str(user.get("first_name") or ""),
            can_manage_bots=bool(user.get("can_manage_bots", False)),
        )

    def set_webhook(self, token: BotToken, registration: WebhookRegistration) -> None:
        self._call(
            token,
            "setWebhook",
            {
                "url": registration.url,
                "secret_token": registration.secret_token,
                "allowed_updates": list(registration.allowed_updates),
                "drop_pending_updates": registration.drop_pending_updates,
            },
        )

    def delete_webhook(self, token: BotToken, drop_pending_updates: bool = False) -> None:
        self._call(token, "deleteWebhook", {"drop_pending_updates": drop_pending_updates})

    def get_webhook_info(self, token: BotToken) -> dict[str, Any]:
        info = self._call(token, "getWebhookInfo")
        return info if isinstance(info, dict) else {}

    def send_message(self, token: BotToken, message: SendMessage) -> SentMessage:
        params: dict[str, Any] = {"chat_id": message.chat_id, "text": message.text, "parse_mode": message.parse_mode}
        if message.reply_markup is not None:
            params["reply_markup"] = message.reply_markup
        if message.disable_web_page_preview:
            # disable_web_page_preview was removed from sendMessage; link_preview_options replaces it.
            params["link_preview_options"] = {"is_disabled": True}
        return _sent(self._call(token, "sendMessage", params), message.chat_id, "sendMessage")

    def edit_message_text(self, token: BotToken, edit: EditMessageText) -> SentMessage:
        params: dict[str, Any] = {"chat_id": edit.chat_id, "message_id": edit.message_id, "text": edit.text}
        params["parse_mode"] = edit.parse_mode
        if edit.reply_markup is not None:
            params["reply_markup"] = edit.reply_markup
        result = self._call(token, "editMessageText", params)
        if result is True:
            return SentMessage(message_id=edit.message_id, chat_id=edit.chat_id)
        return _sent(result, edit.chat_id, "editMessageText")

    def send_document(self, token: BotToken, document: SendDocument) -> SentMessage:
        """Uploads the document (multipart/form-data)."""
        params: dict[str, Any] = {"chat_id": document.chat_id, "caption": document.caption or None}
        upload = ("document", document.filename, document.content, document.mime_type)
        result = self._call(token, "sendDocument", params, upload=upload)
        return _sent(result, document.chat_id, "sendDocument")

    def delete_message(self, token: BotToken, chat_id: int, message_id: int) -> None:
        self._call(token, "deleteMessage", {"chat_id": chat_id, "message_id": message_id})

    def copy_message(self, token: BotToken, copy: CopyMessage) -> SentMessage:
        params: dict[str, Any] = {
            "chat_id": copy.chat_id,
            "from_chat_id": copy.from_chat_id,
            "message_id": copy.message_id,
        }
        if copy.reply_markup is not None:
            params["reply_markup"] = copy.reply_markup
        result = self._call(token, "copyMessage", params)  # a MessageId, not a Message
        copied = result.get("message_id") if isinstance(result, dict) else None
        if not isinstance(copied, int):
            raise TelegramUnavailable("Telegram copyMessage: unexpected answer")
        return SentMessage(message_id=copied, chat_id=copy.chat_id)

    def answer_callback_query(self, token: BotToken, callback_query_id: str, text: str | None = None) -> None:
        self._call(token, "answerCallbackQuery", {"callback_query_id": callback_query_id, "text": text})

    def get_managed_bot_token(self, manager_token: BotToken, user_id: int) -> BotToken:
        return _token(self._call(manager_token, "getManagedBotToken", {"user_id": user_id}), "getManagedBotToken")

    def replace_managed_bot_token(self, manager_token: BotToken, user_id: int) -> BotToken:
        result = self._call(manager_token, "replaceManagedBotToken", {"user_id": user_id})
        return _token(result, "replaceManagedBotToken")


def _interpret(method: str, status_code: int, body: Any, retry_after_header: str | None) -> _Answer | DomainError:
    if not isinstance(body, dict) or "ok" not in body:
        if status_code >= 500 or status_code == 429:
            return TelegramUnavailable(f"Telegram {method}: HTTP {status_code}")
        return TelegramUnavailable(f"Telegram {method}: unexpected answer (HTTP {status_code})")
    if body.get("ok") is True:
        return _Answer(body.get("result"))
    code = body.get("error_code")
    error_code = code if isinstance(code, int) else status_code
    description = redact(str(body.get("description") or "no description"))
    if error_code == 401 or (error_code == 404 and method == "getMe"):
        return TokenRejected(f"Telegram {method}: the bot token was rejected ({error_code} {description})")
    if error_code >= 500:
        return TelegramUnavailable(f"Telegram {method}: {error_code} {description}")
    parameters = body.get("parameters")
    retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if not isinstance(retry_after, int):
        retry_after = _int_or_none(retry_after_header) if error_code == 429 else None
    return TelegramRequestFailed(error_code, description, retry_after)


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _sent(result: Any, chat_id: int, method: str) -> SentMessage:
    if not isinstance(result, dict) or not isinstance(result.get("message_id"), int):
        raise TelegramUnavailable(f"Telegram {method}: unexpected result")
    chat = result.get("chat")
    answered_chat = chat.get("id") if isinstance(chat, dict) else None
    return SentMessage(
        message_id=result["message_id"], chat_id=answered_chat if isinstance(answered_chat, int) else chat_id
    )


def _token(result: Any, method: str) -> BotToken:
    if not isinstance(result, str):
        raise TelegramUnavailable(f"Telegram {method}: unexpected result")
    value: BotToken | None = None
    try:
        value = BotToken(result)
    except DomainError:
        value = None
    if value is None:  # raised outside the except block: InvalidToken's context would hold nothing, but be sure
        raise TelegramUnavailable(f"Telegram {method}: the answer is not a bot token")
    return value
