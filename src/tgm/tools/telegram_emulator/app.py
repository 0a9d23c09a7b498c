"""The HTTP face: `/bot{token}/{method}` like api.telegram.org, and the `/_emulator/` control API."""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tgm.domain.ports import Clock
from tgm.tools.telegram_emulator.core import BotState, Emulator, UploadedFile, mask_token
from tgm.tools.telegram_emulator.delivery import WebhookDelivery
from tgm.tools.telegram_emulator.errors import ApiError
from tgm.tools.telegram_emulator.flood import FloodSettings

log = logging.getLogger(__name__)

_DROPS_PENDING = {"setwebhook", "deletewebhook"}

# The chat page (plain HTML/CSS/JS, no build step), served at `/` and `/_emulator/web/`.
WEB_DIR = Path(__file__).resolve().parent / "web"
# An event stream ends after this long and the browser reconnects by itself (EventSource does): a server stopping
# never waits on a stream that would otherwise stay open forever.
EVENT_STREAM_SECONDS = 20.0
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Changes closer together than this go out as one event: a benchmark running while the page is open must not make
# the page refetch thousands of times a second.
EVENT_COALESCE_SECONDS = 0.05


class UserIn(BaseModel):
    id: int
    first_name: str = "User"
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


class BotIn(BaseModel):
    username: str = Field(min_length=1)
    first_name: str | None = None
    can_manage_bots: bool = False


class MessageIn(BaseModel):
    user: UserIn
    text: str
    chat_id: int | None = None
    chat_type: str | None = None
    reply_to_message_id: int | None = None


class LoadMessageIn(BaseModel):
    bot_id: int
    user: UserIn
    text: str
    chat_id: int | None = None
    chat_type: str | None = None


class LoadIn(BaseModel):
    messages: list[LoadMessageIn]


class CallbackIn(BaseModel):
    user: UserIn
    chat_id: int
    message_id: int
    data: str


class ManagedBotIn(BaseModel):
    user: UserIn
    username: str = Field(min_length=1)
    first_name: str | None = None


class OwnerIn(BaseModel):
    user: UserIn


class FloodIn(BaseModel):
    enabled: bool
    per_bot_per_second: int = Field(default=30, ge=1)
    per_chat_per_second: int = Field(default=1, ge=1)
    per_group_per_minute: int = Field(default=20, ge=1)


class FailuresIn(BaseModel):
    method: str = Field(min_length=1, max_length=64)
    count: int = Field(ge=0, le=10_000)
    delay_seconds: float = Field(default=0.0, ge=0, le=120)


class ChangeSignal:
    """Wakes the chat page's event streams when the emulator's state changes; costs nothing when nobody listens."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def waiter(self) -> asyncio.Future[None]:
        """A future completed at the next change; register it before reading the state it guards."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        return future

    def forget(self, future: asyncio.Future[None]) -> None:
        self._waiters.discard(future)


def _bad_request(description: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}, status_code=400)


def _api_error(error: ApiError) -> JSONResponse:
    return JSONResponse(error.payload(), status_code=error.error_code)


def _params(query: bytes, http_method: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Query string, then the body (JSON or urlencoded form), like the real server accepts."""
    params: dict[str, Any] = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}
    if http_method != "POST" or not body:
        return params
    full_type, content_type = content_type, content_type.split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = orjson.loads(body)
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON encoded request") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Bad Request: can't parse JSON encoded request")
        params.update(data)
    elif content_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif content_type == "multipart/form-data":
        params.update(_multipart(full_type, body))
    return params


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Form fields as strings, file parts as UploadedFile (the stdlib's MIME parser: no extra dependency)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ApiError(400, "Bad Request: can't parse multipart/form-data request")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = UploadedFile(filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode(part.get_content_charset() or "utf-8", "replace")
    return fields


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class BotApiFastPath:
    """ASGI middleware answering `/bot{token}/{method}` itself, before FastAPI's routing and request objects.

    The Bot API is the emulator's hot path (thousands of sendMessage/s in benchmarks); everything else goes on
    to the FastAPI app.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], handler: Any) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/bot") and scope["method"] in ("GET", "POST"):
            token, sep, method = scope["path"][4:].partition("/")
            if sep and token and method and "/" not in method:
                await self._serve(scope, receive, send, token, method)
                return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, token: str, method: str) -> None:
        body = b""
        if scope["method"] == "POST":
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
                break
        status, answer = await self.handler(scope["method"], token, method, scope["query_string"], content_type, body)
        payload = orjson.dumps(answer)
        await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": payload})


def create_app(
    *,
    clock: Clock | None = None,
    retry_initial_delay: float = 0.5,
    retry_max_delay: float = 60.0,
    webhook_timeout: float = 10.0,
    max_in_flight: int = 64,
    flood_control: bool = True,
) -> FastAPI:
    """A fresh emulator with its own in-memory state. `app.state.emulator` is the Emulator."""
    emulator = Emulator(clock)
    default_flood = FloodSettings(enabled=flood_control)
    emulator.flood.settings = FloodSettings(**vars(default_flood))
    delivery = WebhookDelivery(
        emulator,
        initial_delay=retry_initial_delay,
        max_delay=retry_max_delay,
        request_timeout=webhook_timeout,
        max_in_flight=max_in_flight,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await delivery.start()
        try:
            yield
        finally:
            await delivery.stop()

    app = FastAPI(title="Telegram Bot API emulator", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.emulator = emulator
    app.state.delivery = delivery
    changes = ChangeSignal()
    emulator.on_change = changes.notify

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, error: ApiError) -> JSONResponse:
        return _api_error(error)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"ok": False, "error_code": error.status_code, "description": str(error.detail)},
            status_code=error.status_code,
        )

    # -- the Bot API ---------------------------------------------------------------------------------

    async def bot_api(
        http_method: str, token: str, method: str, query: bytes, content_type: str, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        shown = f"/bot{mask_token(token)}/{method}"
        try:
            bot = emulator.bot_by_token(token)
            params = _params(query, http_method, content_type, raw)
            result = emulator.call(bot, method, params)
            if method.lower() in _DROPS_PENDING:
                if params.get("drop_pending_updates") in (True, "true", "True", "1"):
                    await delivery.cancel_all(bot.id)
                delivery.kick(bot)
        except ApiError as error:
            log.info("%s %s -> %s", http_method, shown, error.error_code)
            if error.delay_seconds > 0:
                await asyncio.sleep(error.delay_seconds)
            return error.error_code, error.payload()
        if log.isEnabledFor(logging.INFO):
            log.info("%s %s -> 200", http_method, shown)
        body: dict[str, Any] = {"ok": True, "result": result}
        if method.lower() == "setwebhook":
            body["description"] = "Webhook was set"
        elif method.lower() == "deletewebhook":
            body["description"] = "Webhook was deleted"
        return 200, body

    app.add_middleware(BotApiFastPath, handler=bot_api)

    # -- the control API -----------------------------------------------------------------------------

    def bot_view(bot: BotState) -> dict[str, Any]:
        return {
            "id": bot.id,
            "username": bot.username,
            "first_name": bot.first_name,
            "token": bot.token,
            "can_manage_bots": bot.can_manage_bots,
            "manager_id": bot.manager_id,
        }

    @app.get("/_emulator/health")
    async def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, Any]:
        await delivery.cancel_all()
        emulator.reset()
        emulator.flood.settings = FloodSettings(**vars(default_flood))
        return {"ok": True}

    @app.post("/_emulator/bots")
    async def create_bot(body: BotIn) -> dict[str, Any]:
        bot = emulator.create_bot(body.username, body.first_name, can_manage_bots=body.can_manage_bots)
        return bot_view(bot)

    @app.get("/_emulator/bots")
    async def list_bots() -> list[dict[str, Any]]:
        return [bot_view(bot) for bot in emulator.bots.values()]

    @app.get("/_emulator/bots/{bot_id}")
    async def get_bot(bot_id: int) -> dict[str, Any]:
        return bot_view(emulator.bot(bot_id))

    @app.post("/_emulator/bots/{bot_id}/revoke")
    async def revoke(bot_id: int) -> dict[str, Any]:
        emulator.revoke(emulator.bot(bot_id))
        return {"ok": True}

    @app.post("/_emulator/bots/{bot_id}/messages")
    async def user_message(bot_id: int, body: MessageIn) -> dict[str, Any]:
        bot = emulator.bot(bot_id)
        update_id, message_id = emulator.user_message(
            bot,
            body.user.model_dump(exclude_none=True),
            body.text,
            body.chat_id,
            body.chat_type,
            reply_to_message_id=body.reply_to_message_id,
        )
        return {"update_id": update_id, "message_id": message_id}

    # -- load and measurement ------------------------------------------------------------------------

    @app.post("/_emulator/load")
    async def load(request: Request) -> Response:
        """Many user messages at once, all or none: {"messages": [{bot_id, user, chat_id?, text}]} → update ids."""
        try:
            batch = LoadIn.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            detail = f"Bad Request: invalid load body at {where}: {first['msg']} ({exc.error_count()} error(s))"
            return JSONResponse({"ok": False, "error_code": 400, "description": detail}, status_code=400)
        for item in batch.messages:
            if item.bot_id not in emulator.bots:
                raise ApiError(404, f"Not Found: no such bot {item.bot_id}")
        update_ids = []
        for item in batch.messages:
            update_id, _ = emulator.user_message(
                emulator.bots[item.bot_id],
                item.user.model_dump(exclude_none=True),
                item.text,
                item.chat_id,
                item.chat_type,
            )
            update_ids.append(update_id)
        return Response(orjson.dumps({"update_ids": update_ids}), media_type="application/json")

    @app.get("/_emulator/timeline")
    async def timeline(since: int = Query(0), limit: int = Query(50_000, ge=1, le=1_000_000)) -> Response:
        next_seq, events = emulator.telemetry.page(since, limit)
        return Response(orjson.dumps({"next": next_seq, "events": events}), media_type="application/json")

    @app.get("/_emulator/metrics")
    async def metrics() -> dict[str, Any]:
        return emulator.telemetry.metrics()

    @app.post("/_emulator/bots/{bot_id}/callbacks")
    async def user_callback(bot_id: int, body: CallbackIn) -> dict[str, Any]:
        bot = emulator.bot(bot_id)
        update_id, query_id = emulator.user_callback(
            bot, body.user.model_dump(exclude_none=True), body.chat_id, body.message_id, body.data
        )
        return {"update_id": update_id, "callback_query_id": query_id}

    @app.get("/_emulator/bots/{bot_id}/callbacks")
    async def list_callbacks(bot_id: int) -> list[dict[str, Any]]:
        return list(emulator.bot(bot_id).callback_queries.values())

    @app.post("/_emulator/bots/{bot_id}/managed_bots")
    async def create_managed_bot(bot_id: int, body: ManagedBotIn) -> dict[str, Any]:
        manager = emulator.bot(bot_id)
        bot, update_id = emulator.create_managed_bot(
            manager, body.user.model_dump(exclude_none=True), body.username, body.first_name
        )
        return {**bot_view(bot), "update_id": update_id}

    @app.post("/_emulator/bots/{bot_id}/managed_bots/{managed_id}/owner")
    async def transfer_managed_bot(bot_id: int, managed_id: int, body: OwnerIn) -> dict[str, Any]:
        manager = emulator.bot(bot_id)
        bot, update_id = emulator.transfer_managed_bot(manager, managed_id, body.user.model_dump(exclude_none=True))
        return {**bot_view(bot), "update_id": update_id}

    @app.get("/_emulator/bots/{bot_id}/chats/{chat_id}/messages")
    async def chat_messages(bot_id: int, chat_id: int) -> list[dict[str, Any]]:
        chat = emulator.bot(bot_id).chats.get(chat_id)
        return [] if chat is None else [message.control_view() for message in chat.messages]

    @app.post("/_emulator/bots/{bot_id}/chats/{chat_id}/block")
    async def block_chat(bot_id: int, chat_id: int, blocked: bool = True) -> dict[str, Any]:
        chat = emulator.bot(bot_id).chats.get(chat_id)
        if chat is None:
            raise ApiError(404, "Not Found: no such chat")
        chat.blocked = blocked
        return {"ok": True}

    @app.get("/_emulator/bots/{bot_id}/calls")
    async def calls(bot_id: int) -> list[dict[str, Any]]:
        return emulator.bot(bot_id).calls

    @app.get("/_emulator/bots/{bot_id}/webhook")
    async def webhook(bot_id: int) -> dict[str, Any]:
        bot = emulator.bot(bot_id)
        hook = bot.webhook
        return {
            "url": hook.url,
            "has_secret": bool(hook.secret_token),
            "allowed_updates": hook.allowed_updates,
            "max_connections": hook.max_connections,
            "pending_update_count": bot.pending_count(),
            "pending_update_ids": sorted(item.update_id for queue in bot.queues.values() for item in queue),
            "deliveries": bot.deliveries,
            "last_error_date": hook.last_error_date,
            "last_error_message": hook.last_error_message,
        }

    @app.get("/_emulator/flood")
    async def get_flood() -> dict[str, Any]:
        return vars(emulator.flood.settings)

    @app.put("/_emulator/flood")
    async def set_flood(body: FloodIn) -> dict[str, Any]:
        emulator.flood.settings = FloodSettings(**body.model_dump())
        emulator.flood.reset()
        return vars(emulator.flood.settings)

    @app.put("/_emulator/failures")
    async def set_failures(body: FailuresIn) -> dict[str, int]:
        """Fault injection: the next `count` calls of `method` answer 500 (not performed)."""
        return emulator.fail_next(body.method, body.count, body.delay_seconds)

    # -- the chat page ------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        # no-cache: an emulator restarted with a newer page must not be shown the old one. The CSP is a second
        # line behind the page's own escaping: no inline script or handler, nothing loaded from elsewhere.
        return FileResponse(
            WEB_DIR / "index.html", headers={"cache-control": "no-cache", "content-security-policy": _CSP}
        )

    app.mount("/_emulator/web", StaticFiles(directory=WEB_DIR), name="web")

    @app.get("/_emulator/users")
    async def users() -> list[dict[str, Any]]:
        """Users who wrote to a bot in a private chat: {id, first_name, last_name?, username?, language_code?}."""
        return emulator.users()

    @app.get("/_emulator/users/{user_id}/chats")
    async def user_chats(user_id: str) -> Response:
        """One user's private chats, newest first: [{bot_id, username, first_name, message_count, last_*}]."""
        if not user_id.isascii() or not user_id.isdigit() or not 0 < int(user_id) < 2**53:
            return _bad_request("user_id must be a positive integer")
        return JSONResponse(emulator.user_chats(int(user_id)))

    @app.get("/_emulator/events")
    async def events() -> StreamingResponse:
        """Server-Sent Events: `event: change` with `{"version": n}` at once, then after every state change."""

        async def stream() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            ends = loop.time() + EVENT_STREAM_SECONDS
            sent = -1
            yield b"retry: 500\n\n"
            while loop.time() < ends:
                waiter = changes.waiter()
                try:
                    if emulator.version != sent:
                        sent = emulator.version
                        yield b"event: change\ndata: " + orjson.dumps({"version": sent}) + b"\n\n"
                        await asyncio.sleep(EVENT_COALESCE_SECONDS)
                        continue
                    try:
                        await asyncio.wait_for(waiter, max(0.0, min(10.0, ends - loop.time())))
                    except TimeoutError:
                        yield b": keep-alive\n\n"  # quiet for a while: proxies and the browser see a live stream
                finally:
                    changes.forget(waiter)

        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False)
    async def not_found(path: str) -> JSONResponse:
        return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)

    return app
