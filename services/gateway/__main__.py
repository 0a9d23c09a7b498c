"""`python -m services.gateway serve`: the gateway on a Redis broker.

Embedded mode (no REDIS_URL) is a separate composition: `python -m apps.embedded` (docs/adr/001-embedded-mode.md).
"""

from __future__ import annotations

import argparse
import logging
import sys

from libs.observability.logging import configure_logging
from services.gateway.settings import GatewaySettings

logger = logging.getLogger("services.gateway")


def serve(settings: GatewaySettings) -> int:
    import uvicorn
    from dramatiq.brokers.redis import RedisBroker

    from services.gateway.app import create_app
    from services.gateway.container import GatewayContainer

    if not settings.redis_url:
        print(
            "services.gateway: REDIS_URL is empty. This entry point needs a Redis broker; for embedded mode "
            "(gateway + dispatcher in one process on an in-process broker) run `python -m apps.embedded`.",
            file=sys.stderr,
        )
        return 2
    broker = RedisBroker(url=settings.redis_url)  # type: ignore[no-untyped-call]
    container = GatewayContainer(settings=settings, broker=broker)
    app = create_app(container, on_shutdown=[container.shutdown_resources])
    logger.info("gateway listening", extra={"host": settings.gateway_host, "port": settings.gateway_port})
    uvicorn.run(app, host=settings.gateway_host, port=settings.gateway_port, log_config=None, access_log=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve webhooks (needs REDIS_URL)")
    parser.parse_args(argv)
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
