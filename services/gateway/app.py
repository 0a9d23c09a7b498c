"""Builds the gateway's FastAPI application around a container."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from services.gateway.api import health, webhook
from services.gateway.container import GatewayContainer


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
            for hook in on_shutdown:
                hook()

    app = FastAPI(title="tgm gateway", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.container = container
    app.state.route_lookup_limiter = anyio.CapacityLimiter(container.settings().route_lookup_concurrency)
    app.include_router(webhook.router)
    app.include_router(health.router)
    return app
