"""The HTTP face: `/bot{token}/{method}` like api.telegram.org, and the `/_emulator/` control API."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.domain.ports import Clock
from tools.telegram_emulator.core import BotState, Emulator, mask_token
from tools.telegram_emulator.delivery import WebhookDelivery
from tools.telegram_emulator.errors import ApiError
from tools.telegram_emulator.flood import FloodSettings

log = logging.getLogger("telegram_emulator")

_DROPS_PENDING = {"setwebhook", "deletewebhook"}


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


def _api_error(error: ApiError) -> JSONResponse:
    return JSONResponse(error.payload(), status_code=error.error_code)


async def _params(request: Request) -> dict[str, Any]:
    """Query string, then the body (JSON or urlencoded form), like the real server accepts."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method != "POST":
        return params
    body = await request.body()
    if not body:
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON encoded request") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Bad Request: can't parse JSON encoded request")
        params.update(data)
    elif content_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def create_app(
    *,
    clock: Clock | None = None,
    retry_initial_delay: float = 0.5,
    retry_max_delay: float = 60.0,
    webhook_timeout: float = 10.0,
) -> FastAPI:
    """A fresh emulator with its own in-memory state. `app.state.emulator` is the Emulator."""
    emulator = Emulator(clock)
    delivery = WebhookDelivery(
        emulator, initial_delay=retry_initial_delay, max_delay=retry_max_delay, request_timeout=webhook_timeout
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

    @app.api_route("/bot{token}/{method}", methods=["GET", "POST"])
    async def bot_api(token: str, method: str, request: Request) -> JSONResponse:
        shown = f"/bot{mask_token(token)}/{method}"
        try:
            bot = emulator.bot_by_token(token)
            params = await _params(request)
            result = emulator.call(bot, method, params)
            if method.lower() in _DROPS_PENDING:
                if params.get("drop_pending_updates") in (True, "true", "True", "1"):
                    await delivery.cancel_all(bot.id)
                delivery.kick(bot)
        except ApiError as error:
            log.info("%s %s -> %s", request.method, shown, error.error_code)
            return _api_error(error)
        log.info("%s %s -> 200", request.method, shown)
        body: dict[str, Any] = {"ok": True, "result": result}
        if method.lower() == "setwebhook":
            body["description"] = "Webhook was set"
        elif method.lower() == "deletewebhook":
            body["description"] = "Webhook was deleted"
        return JSONResponse(body)

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
        emulator.flood.settings = FloodSettings()
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
            bot, body.user.model_dump(exclude_none=True), body.text, body.chat_id, body.chat_type
        )
        return {"update_id": update_id, "message_id": message_id}

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

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False)
    async def not_found(path: str) -> JSONResponse:
        return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)

    return app
