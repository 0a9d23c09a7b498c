"""Builds the gateway's FastAPI application around a container."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from services.gateway.api import health, webhook
from services.gateway.container import GatewayContainer

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app(
    container: GatewayContainer,
    *,
    on_startup: Sequence[Callable[[], object]] = (),
    on_shutdown: Sequence[Callable[[], object]] = (),
) -> FastAPI:
    """`on_startup`/`on_shutdown` let a composition (embedded mode) run in-process workers with the app."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            hook()
        try:
            yield
        finally:
            await container.update_queue().close()
            for hook in on_shutdown:
                hook()

    app = FastAPI(
        title="tgm gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry spans, metrics and logs cost ~10 % of a webhook's CPU and nothing reads
        # them: the gateway's metrics are Prometheus counters (in memory, scraped).
        telemetry=_NO_TELEMETRY,
    )
    app.state.container = container
    app.state.route_lookup_limiter = anyio.CapacityLimiter(container.settings().route_lookup_concurrency)
    app.router.routes.extend(webhook.routes)
    app.include_router(health.router)
    return app


def app_from_environment() -> FastAPI:
    """The Redis-mode gateway built from the environment: the factory each uvicorn worker process calls."""
    from dramatiq.brokers.redis import RedisBroker

    from libs.observability.logging import configure_logging
    from services.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    broker = RedisBroker(url=settings.redis_url)  # type: ignore[no-untyped-call]
    container = GatewayContainer(settings=settings, broker=broker)
    return create_app(container, on_shutdown=[container.shutdown_resources])
