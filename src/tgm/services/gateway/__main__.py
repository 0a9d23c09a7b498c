"""`python -m tgm.services.gateway serve`: the gateway on a Redis broker.

Embedded mode (no REDIS_URL) is a separate composition: `python -m tgm.apps.embedded` (docs/adr/001-embedded-mode.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile

from tgm.config.production import production_refusal
from tgm.observability.error_tracking import configure_error_tracking
from tgm.observability.logging import configure_logging
from tgm.services.gateway.settings import FAST_SERVER, GatewaySettings

logger = logging.getLogger(__name__)


def serve(settings: GatewaySettings) -> int:
    import uvicorn

    refusal = production_refusal("tgm.services.gateway", settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2

    from tgm.grpc_runtime.tls import TlsConfigError, required_tls_from_env

    try:
        required_tls_from_env()  # its registry (and vault) channels: checked now, not at the first webhook
    except TlsConfigError as exc:
        print(f"tgm.services.gateway: refusing to start: {exc}", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print(
            "tgm.services.gateway: REDIS_URL is empty. This entry point needs a Redis broker; for embedded mode "
            "(gateway + dispatcher in one process on an in-process broker) run `python -m tgm.apps.embedded`.",
            file=sys.stderr,
        )
        return 2
    from tgm.grpc_runtime.tls import insecure_dev_allowed
    from tgm.messaging.envelope_signing import missing_key_problem
    from tgm.messaging.redis_acl import redis_url_problem

    problem = missing_key_problem(settings.envelope_signing_key, insecure_dev=insecure_dev_allowed())
    problem = problem or redis_url_problem(settings.redis_url, insecure_dev=insecure_dev_allowed())
    if problem:
        print(f"tgm.services.gateway: refusing to start: {problem}", file=sys.stderr)
        return 2
    logger.info(
        "gateway listening",
        extra={"host": settings.gateway_host, "port": settings.gateway_port, "workers": settings.gateway_workers},
    )
    if settings.gateway_workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several worker processes: each writes its counters to files here and /metrics (in any worker) sums them.
        # Set before the workers start (they inherit it); a fresh folder, so no stale counts from a previous run.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tgm-gateway-metrics-")
    # Each worker process builds its own app from the environment (the factory); they share one listening socket.
    uvicorn.run(
        "tgm.services.gateway.app:app_from_environment",
        factory=True,
        host=settings.gateway_host,
        port=settings.gateway_port,
        workers=settings.gateway_workers,
        log_config=None,
        access_log=False,
        **FAST_SERVER,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgm.services.gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve webhooks (needs REDIS_URL)")
    parser.parse_args(argv)
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    configure_error_tracking("gateway")
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
