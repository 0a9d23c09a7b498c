"""/healthz (the process is up) and /readyz (registry and broker reachable).

/readyz is public (the load balancer asks it), so its answer is computed at most once per
`READINESS_CACHE_SECONDS` (setting, 2 s) and shared: a flood of /readyz calls cannot turn into a flood of
registry and Redis calls.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tgm.observability.metrics import exposition

router = APIRouter()


class _ReadinessCache:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.at = float("-inf")
        self.checks: dict[str, bool] = {}


async def _checks(request: Request) -> dict[str, bool]:
    state: Any = request.app.state
    cache: _ReadinessCache | None = getattr(state, "readiness_cache", None)
    if cache is None:
        cache = state.readiness_cache = _ReadinessCache()
    async with cache.lock:  # one probe round at a time; the callers that waited get its result
        if time.monotonic() - cache.at >= state.container.settings().readiness_cache_seconds:
            probes = state.container.readiness_probes()
            cache.checks = {probe.name: await run_in_threadpool(probe) for probe in probes}
            cache.at = time.monotonic()
        return dict(cache.checks)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks = await _checks(request)
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus text format: every worker's counters when the gateway runs several (multiprocess mode)."""
    body, content_type = await run_in_threadpool(exposition)
    return Response(body, media_type=content_type)
