"""`python -m tgm.apps.embedded`: the gateway's HTTP server plus the dispatcher's workers, one process, no Redis.

Both containers share one `StubBroker`; the worker starts with the app and stops with it (uvicorn
handles SIGTERM/SIGINT). Updates queued in memory are lost if the process dies: dev/single-node only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from fastapi import FastAPI

from tgm.config.production import production_refusal
from tgm.observability.error_tracking import configure_error_tracking
from tgm.observability.logging import configure_logging
from tgm.services.dispatcher.settings import DispatcherSettings
from tgm.services.gateway.settings import FAST_SERVER, GatewaySettings

logger = logging.getLogger(__name__)
STOP_TIMEOUT_MS = 10_000
EMBEDDED_IN_PRODUCTION = (
    "tgm.apps.embedded keeps queued updates in memory (lost when the process dies): run tgm.services.gateway and "
    "tgm.services.dispatcher on Redis in production"
)


def build(gateway_settings: GatewaySettings, dispatcher_settings: DispatcherSettings) -> FastAPI:
    """Returns the FastAPI app with the dispatcher's worker hooked to its lifespan."""
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    from tgm.services.dispatcher.adapters.interaction_stats import start_flusher
    from tgm.services.dispatcher.container import DispatcherContainer, resolve_for_workers
    from tgm.services.dispatcher.workers.actors import register_actors
    from tgm.services.gateway.app import create_app
    from tgm.services.gateway.container import GatewayContainer

    broker = StubBroker()
    dispatcher = DispatcherContainer(settings=dispatcher_settings, broker=broker)
    register_actors(broker, dispatcher)
    worker = dramatiq.Worker(broker, worker_threads=dispatcher_settings.dispatcher_threads)
    # Embedded means the in-process broker: never the Redis update queue, whatever REDIS_URL says.
    gateway = GatewayContainer(settings=gateway_settings.model_copy(update={"redis_url": ""}), broker=broker)

    stop_stats: list[Callable[[], None]] = []

    def start() -> None:
        resolve_for_workers(dispatcher)  # on this thread, before any worker thread resolves them
        worker.start()
        stop_stats.append(
            start_flusher(
                dispatcher.interaction_recorder(),
                dispatcher.bot_admin(),
                dispatcher_settings.stats_flush_interval_seconds,
            )
        )
        logger.info("embedded dispatcher started")

    def stop() -> None:
        worker.stop(timeout=STOP_TIMEOUT_MS)
        for stop_flusher in stop_stats:
            stop_flusher()
        broker.close()
        gateway.shutdown_resources()
        dispatcher.shutdown_resources()
        logger.info("embedded dispatcher stopped")

    return create_app(gateway, on_startup=[start], on_shutdown=[stop])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgm.apps.embedded")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    parser.parse_args(argv)

    import uvicorn

    from tgm.grpc_runtime.tls import TlsConfigError, required_tls_from_env

    gateway_settings = GatewaySettings()
    # No production setting makes this composition fit for production: its updates wait in memory only.
    refusal = production_refusal("tgm.apps.embedded", None, also=[EMBEDDED_IN_PRODUCTION])
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    try:
        required_tls_from_env()  # its registry and vault channels
    except TlsConfigError as exc:
        print(f"tgm.apps.embedded: refusing to start: {exc}", file=sys.stderr)
        return 2
    configure_logging("embedded", gateway_settings.log_level)
    configure_error_tracking("embedded")
    logging.getLogger("dramatiq").setLevel(max(logging.INFO, logging.getLogger().level))
    if gateway_settings.redis_url:
        logger.warning("REDIS_URL is set but ignored: embedded mode uses an in-process broker")
    dispatcher_settings = DispatcherSettings(
        redis_url="",
        registry_addr=gateway_settings.registry_addr,
        vault_addr=gateway_settings.vault_addr,
        telegram_api_base_url=gateway_settings.telegram_api_base_url,
    )
    app = build(gateway_settings, dispatcher_settings)
    uvicorn.run(
        app,
        host=gateway_settings.gateway_host,
        port=gateway_settings.gateway_port,
        log_config=None,
        access_log=False,
        **FAST_SERVER,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
