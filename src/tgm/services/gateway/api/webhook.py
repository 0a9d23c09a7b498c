"""POST /webhook/{public_id}: the only door Telegram knocks on.

Order of checks (security relevant): size cap from Content-Length → route → secret header →
body read under the cap → bot accepts updates → JSON shape → enqueue. Nothing is parsed or
enqueued before the secret matched, and bodies are never logged (they may hold tokens).

`WebhookEndpoint` is a plain ASGI app: the gateway's application hands it webhook POSTs before FastAPI's
middleware stack and Starlette's Request/Response objects, which cost more CPU than the webhook itself
(measured: ~28 % of the gateway's samples under load). The hot path (a cached route, a managed bot's update) runs
on the event loop from start to end: the route comes from the in-process cache, the enqueue is one awaited Redis
round trip shared with concurrent requests, and nothing is handed to a thread. Only a cache miss (registry call)
and the manager bot's sealing (vault call) use threads.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

import anyio
import anyio.to_thread
import orjson

from tgm.domain.bots import webhook_secret_matches
from tgm.domain.ports import AsyncUpdateQueue, Clock, Route, RouteDirectory
from tgm.domain.telegram_update import MalformedUpdate, parse_update
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.mailbox import UnencodableUpdate
from tgm.observability.ids import new_request_id
from tgm.observability.logging import request_id_var
from tgm.observability.metrics import WEBHOOK_UPDATES
from tgm.registry_client.client import RegistryUnavailable
from tgm.services.gateway.api.sealing import seal_manager_update

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PATH_PREFIX = "/webhook/"
PATH_TEMPLATE = PATH_PREFIX + "{public_id}"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
_SECRET_HEADER_KEY = SECRET_HEADER.lower().encode()
# public ids are `secrets.token_urlsafe(18)`; anything far off that shape never reaches the registry.
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Telegram's update ids are positive and far below this; the dispatcher's dedup keys and its Lua scripts (cjson reads
# numbers as doubles) must see the same integer, exact up to 2**53.
MAX_UPDATE_ID = 2**53 - 1

logger = logging.getLogger(__name__)

_OK_BODY = b'{"ok":true}'


class Answer(NamedTuple):
    status: int
    body: bytes = _OK_BODY
    retry_after: int | None = None


OK = Answer(200)

_OUTCOME_NAMES = {
    200: "accepted",
    400: "bad_request",
    403: "forbidden",
    404: "unknown_bot",
    413: "too_large",
    500: "error",
    503: "unavailable",
}
# One counter child per outcome, made once: `labels()` per request would cost a dict lookup and a lock.
_OUTCOMES = {status: WEBHOOK_UPDATES.labels(name) for status, name in _OUTCOME_NAMES.items()}


def _error(status: int, description: str, retry_after: int | None = None) -> Answer:
    return Answer(status, orjson.dumps({"ok": False, "error": description}), retry_after)


class _TooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


async def _read_capped(receive: Receive, cap: int) -> bytes:
    """The body, refused as soon as it passes `cap` (whether or not Content-Length was sent)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > cap:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _parse_update(body: bytes) -> tuple[dict[str, Any], int] | None:
    """(update, update_id), or None when the body is not an Update object at all (its shape is checked later)."""
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


def _set_aside(bot_id: str, update_id: int) -> Answer:
    logger.warning("update set aside: malformed", extra={"bot_id": bot_id, "update_id": update_id})
    return OK


def _malformed(update: dict[str, Any]) -> bool:
    try:
        parse_update(update)
    except MalformedUpdate:
        return True
    return False


def _headers_of(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """(Content-Length, secret header) as sent, from the raw header list (names are lower-case in ASGI)."""
    length: bytes | None = None
    secret: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value
        elif name == _SECRET_HEADER_KEY:
            secret = value
    return length, secret


class WebhookEndpoint:
    """ASGI app for POST /webhook/{public_id}; providers are resolved per request, so tests can override them."""

    def __init__(self, container: Any, route_lookup_limiter: anyio.CapacityLimiter) -> None:
        self._container = container
        self._limiter = route_lookup_limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Entry from the router (scope carries the path parameter)."""
        await self.serve(scope["path_params"]["public_id"], scope, receive, send)

    async def serve(self, public_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        context_token = request_id_var.set(request_id)
        try:
            try:
                answer = await self._answer(public_id, scope, receive, request_id)
            except _ClientGone:
                return  # nobody to answer; nothing was enqueued
            except Exception:
                logger.exception("webhook handler crashed; asking Telegram to retry")
                answer = _error(500, "internal error")
            counter = _OUTCOMES.get(answer.status)
            if counter is not None:
                counter.inc()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer.body)).encode()),
                (b"x-request-id", request_id.encode()),
            ]
            if answer.retry_after is not None:
                headers.append((b"retry-after", str(answer.retry_after).encode()))
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": answer.body})
        finally:
            request_id_var.reset(context_token)

    async def _route_for(self, routes: RouteDirectory, public_id: str) -> Route | None:
        """A cache hit is answered inline (no thread); a miss goes to the registry on the lookup limiter's threads."""
        hit, route = routes.cached(public_id)
        if hit:
            return route
        return await anyio.to_thread.run_sync(routes.route_for, public_id, limiter=self._limiter)

    async def _answer(self, public_id: str, scope: Scope, receive: Receive, request_id: str) -> Answer:
        container = self._container
        settings = container.settings()
        cap: int = settings.max_update_bytes
        retry_after: int = settings.retry_after_seconds
        declared_header, presented_header = _headers_of(scope)
        if declared_header is not None:
            if not declared_header.isdigit():
                return _error(400, "bad Content-Length")
            if int(declared_header) > cap:
                logger.warning("update rejected: too large")
                return _error(413, "update too large")

        if not _PUBLIC_ID.fullmatch(public_id):
            return _error(404, "unknown bot")
        routes: RouteDirectory = container.route_directory()
        try:
            route = await self._route_for(routes, public_id)
        except RegistryUnavailable as exc:
            logger.warning("route lookup failed; asking Telegram to retry", extra={"error": str(exc)})
            return _error(503, "temporarily unavailable", retry_after)
        except Exception:
            logger.exception("route lookup crashed; asking Telegram to retry")
            return _error(503, "temporarily unavailable", retry_after)
        if route is None:
            return _error(404, "unknown bot")

        presented = presented_header.decode("latin-1") if presented_header is not None else None
        if not webhook_secret_matches(presented, route.webhook_secret_sha256):
            # The cached route may predate a secret rotation: look once more (rate-limited per bot by the adapter).
            fresh: Route | None = None
            if presented is not None:
                try:
                    fresh = await anyio.to_thread.run_sync(routes.refreshed_route, public_id, limiter=self._limiter)
                except Exception:
                    fresh = None
            if fresh is None or not webhook_secret_matches(presented, fresh.webhook_secret_sha256):
                logger.warning("update rejected: bad secret", extra={"bot_id": route.bot_id})
                return _error(403, "forbidden")
            route = fresh

        try:
            body = await _read_capped(receive, cap)
        except _TooLarge:
            logger.warning("update rejected: too large", extra={"bot_id": route.bot_id})
            return _error(413, "update too large")

        if not route.accepts_updates:
            logger.info("update dropped: bot does not accept updates", extra={"bot_id": route.bot_id})
            return OK

        parsed = _parse_update(body)
        if parsed is None:
            logger.warning("update rejected: not an update object", extra={"bot_id": route.bot_id})
            return _error(400, "body must be a Telegram Update: a JSON object with an integer update_id (0 to 2**53-1)")
        update, update_id = parsed

        sealed_texts: tuple[str, ...] = ()
        # A malformed update is set aside, answered 200: Telegram retries a refused update and holds the bot's later
        # ones behind it, so one update tgm cannot read must not stall the bot. It never reaches a queue or a
        # handler. Checked before sealing for the manager bot; for the others by the envelope's own (cached) parse
        # below, which the mailbox's chat key reuses: one parse per update on the hot path.
        if route.is_manager and _malformed(update):
            return _set_aside(route.bot_id, update_id)
        if route.is_manager:
            try:
                update, sealed_texts = await anyio.to_thread.run_sync(
                    seal_manager_update, container.vault(), route.bot_id, update
                )
            except Exception as exc:
                # Never enqueue a manager update unsealed: Telegram retries after Retry-After.
                logger.warning(
                    "sealing failed; asking Telegram to retry",
                    extra={"bot_id": route.bot_id, "update_id": update_id, "error": type(exc).__name__},
                )
                return _error(503, "temporarily unavailable", retry_after)

        clock: Clock = container.clock()
        envelope = UpdateEnvelope(
            bot_id=route.bot_id,
            update_id=update_id,
            received_at=clock.now().timestamp(),
            request_id=request_id,
            update=update,
            sealed_texts=sealed_texts,
        )
        try:
            envelope.view  # noqa: B018 - parsed once here, cached on the envelope for the chat key
        except MalformedUpdate:
            return _set_aside(route.bot_id, update_id)
        queue: AsyncUpdateQueue = container.update_queue()
        try:
            await queue.enqueue(envelope)
        except UnencodableUpdate as exc:
            # Permanent: Telegram would redeliver it forever and hold the chat behind it. Answered 200, set aside.
            logger.warning(
                "update dropped: it cannot be carried",
                extra={"bot_id": route.bot_id, "update_id": update_id, "error": str(exc)},
            )
            return OK
        except Exception as exc:
            # No traceback: the failing call had the update in hand, and bodies are never logged.
            logger.warning(
                "enqueue failed; asking Telegram to retry",
                extra={"bot_id": route.bot_id, "update_id": update_id, "error": type(exc).__name__},
            )
            return _error(503, "temporarily unavailable", retry_after)
        # DEBUG, not INFO: one JSON log line per update would cost more than the rest of this handler.
        logger.debug("update accepted", extra={"bot_id": route.bot_id, "update_id": update_id})
        return OK
