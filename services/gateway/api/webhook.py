"""POST /webhook/{public_id}: the only door Telegram knocks on.

Order of checks (security relevant): size cap from Content-Length → route → secret header →
body read under the cap → bot accepts updates → JSON shape → enqueue. Nothing is parsed or
enqueued before the secret matched, and bodies are never logged (they may hold tokens).

The hot path (a cached route, a managed bot's update) runs on the event loop from start to end: the
route comes from the in-process cache, the enqueue is one awaited Redis round trip, and nothing is handed
to a thread. Only a cache miss (registry call) and the manager bot's sealing (vault call) use threads.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
from typing import Any, cast

import anyio
import anyio.to_thread
import orjson
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.routing import Route as HttpRoute

from libs.domain.bots import webhook_secret_matches
from libs.domain.ports import AsyncUpdateQueue, Clock, Route, RouteDirectory
from libs.domain.updates import UpdateEnvelope
from libs.messaging.mailbox import UnencodableUpdate
from libs.observability.logging import request_id_var
from libs.registry_client.client import RegistryUnavailable
from services.gateway.api.sealing import seal_manager_update

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
REQUEST_ID_HEADER = "X-Request-Id"
# public ids are `secrets.token_urlsafe(18)`; anything far off that shape never reaches the registry.
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

logger = logging.getLogger("services.gateway.webhook")
# A plain Starlette route, not an APIRouter endpoint: FastAPI's parameter solving and response validation cost
# ~10 % of a webhook's CPU and buy nothing here (the path parameter is checked by hand, the body parsed by hand).
routes: list[BaseRoute] = []

_OK_BODY = b'{"ok":true}'
# Request ids: a random per-process prefix and a counter (32 hex digits, unique across processes) instead of a
# uuid4 per request.
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFFFFFFFFFF:016x}"


class _TooLarge(Exception):
    pass


def _ok(request_id: str) -> Response:
    return Response(_OK_BODY, media_type="application/json", headers={REQUEST_ID_HEADER: request_id})


def _reply(status: int, request_id: str, body: dict[str, Any], retry_after: int | None = None) -> JSONResponse:
    headers = {REQUEST_ID_HEADER: request_id}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, headers=headers)


def _error(status: int, request_id: str, description: str, retry_after: int | None = None) -> JSONResponse:
    return _reply(status, request_id, {"ok": False, "error": description}, retry_after)


async def _read_capped(request: Request, cap: int, declared: int | None) -> bytes:
    if declared is not None:
        body = await request.body()  # the server stops at Content-Length, already checked against the cap
        if len(body) > cap:
            raise _TooLarge
        return body
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


# Telegram's update ids are positive and far below this; the dispatcher's dedup keys and its Lua scripts (cjson reads
# numbers as doubles) must see the same integer, exact up to 2**53.
MAX_UPDATE_ID = 2**53 - 1


def _parse_update(body: bytes) -> tuple[dict[str, Any], int] | None:
    try:
        update = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            # orjson refuses what stdlib json accepts: lone surrogate escapes ("\\ud800") and deep nesting.
            update = json.loads(body)
        except (ValueError, RecursionError):
            return None
    if not isinstance(update, dict):
        return None
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id <= MAX_UPDATE_ID:
        return None
    return update, update_id


async def _route_for(routes: RouteDirectory, public_id: str, limiter: anyio.CapacityLimiter) -> Route | None:
    """A cache hit is answered inline (no thread); a miss goes to the registry on the lookup limiter's threads,
    never the default pool that `enqueue` uses."""
    cached = getattr(routes, "cached", None)
    if cached is not None:
        hit, route = cached(public_id)
        if hit:
            return cast("Route | None", route)
    return await anyio.to_thread.run_sync(routes.route_for, public_id, limiter=limiter)


async def receive_update(request: Request) -> Response:
    public_id: str = request.path_params["public_id"]
    container = request.app.state.container
    settings = container.settings()
    cap: int = settings.max_update_bytes
    retry_after: int = settings.retry_after_seconds
    request_id = new_request_id()
    context_token = request_id_var.set(request_id)
    try:
        declared_header = request.headers.get("content-length")
        declared: int | None = None
        if declared_header is not None:
            if not declared_header.isdigit():
                return _error(400, request_id, "bad Content-Length")
            declared = int(declared_header)
            if declared > cap:
                logger.warning("update rejected: too large", extra={"request_id": request_id})
                return _error(413, request_id, "update too large")

        if not _PUBLIC_ID.fullmatch(public_id):
            return _error(404, request_id, "unknown bot")
        routes: RouteDirectory = container.route_directory()
        limiter: anyio.CapacityLimiter = request.app.state.route_lookup_limiter
        try:
            route = await _route_for(routes, public_id, limiter)
        except RegistryUnavailable as exc:
            logger.warning("route lookup failed; asking Telegram to retry", extra={"error": str(exc)})
            return _error(503, request_id, "temporarily unavailable", retry_after)
        except Exception:
            logger.exception("route lookup crashed; asking Telegram to retry")
            return _error(503, request_id, "temporarily unavailable", retry_after)
        if route is None:
            return _error(404, request_id, "unknown bot")

        presented = request.headers.get(SECRET_HEADER)
        if not webhook_secret_matches(presented, route.webhook_secret_sha256):
            # The cached route may predate a secret rotation: look once more (rate-limited per bot).
            refresh = getattr(routes, "refreshed_route", None)
            fresh: Route | None = None
            if refresh is not None and presented is not None:
                try:
                    fresh = await anyio.to_thread.run_sync(refresh, public_id, limiter=limiter)
                except Exception:
                    fresh = None
            if fresh is None or not webhook_secret_matches(presented, fresh.webhook_secret_sha256):
                logger.warning("update rejected: bad secret", extra={"bot_id": route.bot_id})
                return _error(403, request_id, "forbidden")
            route = fresh

        try:
            body = await _read_capped(request, cap, declared)
        except _TooLarge:
            logger.warning("update rejected: too large", extra={"bot_id": route.bot_id})
            return _error(413, request_id, "update too large")

        if not route.accepts_updates:
            logger.info("update dropped: bot does not accept updates", extra={"bot_id": route.bot_id})
            return _ok(request_id)

        parsed = _parse_update(body)
        if parsed is None:
            logger.warning("update rejected: not an update object", extra={"bot_id": route.bot_id})
            return _error(400, request_id, "body must be a JSON object with an integer update_id (0 to 2**53-1)")
        update, update_id = parsed

        sealed_texts: tuple[str, ...] = ()
        if route.is_manager:
            try:
                update, sealed_texts = await run_in_threadpool(
                    seal_manager_update, container.vault(), route.bot_id, update
                )
            except Exception as exc:
                # Never enqueue a manager update unsealed: Telegram retries after Retry-After.
                logger.warning(
                    "sealing failed; asking Telegram to retry",
                    extra={"bot_id": route.bot_id, "update_id": update_id, "error": type(exc).__name__},
                )
                return _error(503, request_id, "temporarily unavailable", retry_after)

        clock: Clock = container.clock()
        envelope = UpdateEnvelope(
            bot_id=route.bot_id,
            update_id=update_id,
            received_at=clock.now().timestamp(),
            request_id=request_id,
            update=update,
            sealed_texts=sealed_texts,
        )
        queue: AsyncUpdateQueue = container.update_queue()
        try:
            await queue.enqueue(envelope)
        except UnencodableUpdate as exc:
            # Permanent: Telegram would redeliver it forever and hold the chat behind it. Answered 200, set aside.
            logger.warning(
                "update dropped: it cannot be carried",
                extra={"bot_id": route.bot_id, "update_id": update_id, "error": str(exc)},
            )
            return _ok(request_id)
        except Exception as exc:
            # No traceback: the failing call had the update in hand, and bodies are never logged.
            logger.warning(
                "enqueue failed; asking Telegram to retry",
                extra={"bot_id": route.bot_id, "update_id": update_id, "error": type(exc).__name__},
            )
            return _error(503, request_id, "temporarily unavailable", retry_after)
        # DEBUG, not INFO: one JSON log line per update would cost more than the rest of this handler.
        logger.debug("update accepted", extra={"bot_id": route.bot_id, "update_id": update_id})
        return _ok(request_id)
    finally:
        request_id_var.reset(context_token)


routes.append(HttpRoute("/webhook/{public_id}", receive_update, methods=["POST"]))
