"""Builds the gateway's FastAPI application around a container."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.routing import Route

from tgm.services.gateway.api import health
from tgm.services.gateway.api.webhook import PATH_PREFIX, PATH_TEMPLATE, Receive, Scope, Send, WebhookEndpoint
from tgm.services.gateway.container import GatewayContainer

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
_PREFIX_LENGTH = len(PATH_PREFIX)


class GatewayApp(FastAPI):
    """FastAPI for everything but the webhook POST, which goes straight to its ASGI endpoint.

    The webhook is the only call Telegram makes and the only one under load; FastAPI's middleware stack (error and
    exception middlewares, body limit, exit stack, routing, Request/Response objects) cost more CPU than the webhook
    itself and add nothing to it (it answers every error itself). The route stays registered in FastAPI, so other
    methods get its 405 and tests that go through the router see the same endpoint.
    """

    webhook: WebhookEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(PATH_PREFIX):
                await self.webhook.serve(path[_PREFIX_LENGTH:], scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    container: GatewayContainer,
    *,
    on_startup: Sequence[Callable[[], object]] = (),
    on_shutdown: Sequence[Callable[[], object]] = (),
) -> GatewayApp:
    """`on_startup`/`on_shutdown` let a composition (embedded mode) run in-process workers with the app."""

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        for hook in on_startup:
            hook()
        try:
            yield
        finally:
            await container.update_queue().close()
            for hook in on_shutdown:
                hook()

    app = GatewayApp(
        title="tgm gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry spans, metrics and logs cost ~10 % of a request's CPU and nothing reads
        # them: the gateway's metrics are Prometheus counters (in memory, scraped).
        telemetry=_NO_TELEMETRY,
    )
    app.state.container = container
    app.webhook = WebhookEndpoint(container, anyio.CapacityLimiter(container.settings().route_lookup_concurrency))
    app.router.routes.append(Route(PATH_TEMPLATE, app.webhook, methods=["POST"]))
    app.include_router(health.router)
    return app


def app_from_environment() -> FastAPI:
    """The Redis-mode gateway built from the environment: the factory each uvicorn worker process calls."""
    from dramatiq.brokers.redis import RedisBroker

    from tgm.observability.error_tracking import configure_error_tracking
    from tgm.observability.logging import configure_logging
    from tgm.services.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    configure_error_tracking("gateway")  # each worker process its own client (a no-op in the serving process)
    broker = RedisBroker(url=settings.redis_url)  # type: ignore[no-untyped-call]
    container = GatewayContainer(settings=settings, broker=broker)
    # The route directory's revalidation thread stops before the registry channel closes under it.
    return create_app(
        container, on_shutdown=[lambda: container.route_directory().close(), container.shutdown_resources]
    )
