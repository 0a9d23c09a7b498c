"""`python -m tgm.services.botregistry serve|migrate|rewrap|purge-events`."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

import grpc
from grpc_health.v1 import health_pb2

from tgm.config.production import production_refusal
from tgm.grpc_runtime.authorization import AuthorizationInterceptor
from tgm.grpc_runtime.channels import add_server_port, build_server, mark_serving
from tgm.grpc_runtime.tls import TlsConfigError, required_tls_from_env
from tgm.host.signals import stop_event_on_signals
from tgm.observability.error_tracking import configure_error_tracking
from tgm.observability.logging import configure_logging
from tgm.registry.v1 import registry_pb2_grpc
from tgm.services.botregistry import migrate
from tgm.services.botregistry.authorization import default_policy
from tgm.services.botregistry.container import Container
from tgm.services.botregistry.database_health import DatabaseHealthWatcher, select_one
from tgm.services.botregistry.event_retention import EventRetention
from tgm.services.botregistry.grpc.database_errors import DatabaseUnavailableInterceptor
from tgm.services.botregistry.grpc.servicer import SERVICE_NAME
from tgm.services.botregistry.manager_bot_identity import start_manager_registration
from tgm.services.botregistry.settings import RegistrySettings

logger = logging.getLogger(__name__)


def run_migrations(settings: RegistrySettings) -> None:
    migrate.upgrade(settings.db_url)
    logger.info("database migrated", extra={"backend": settings.db_url.split(":", 1)[0]})


def serve(settings: RegistrySettings) -> int:
    refusal = production_refusal("tgm.services.botregistry", settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    try:
        tls = required_tls_from_env()  # before anything else: no TLS, no identity, no authorization
    except TlsConfigError as exc:
        print(f"tgm.services.botregistry: refusing to start: {exc}", file=sys.stderr)
        return 2
    run_migrations(settings)
    container = Container()
    container.settings.override(settings)
    servicer = container.servicer()

    # The database down answers UNAVAILABLE (retry later), whatever the method.
    interceptors: tuple[grpc.ServerInterceptor, ...] = (DatabaseUnavailableInterceptor(),)
    if tls is not None:
        # Per-caller authorization from the client certificate (src/tgm/services/botregistry/authorization.py), first.
        interceptors = (AuthorizationInterceptor(SERVICE_NAME, default_policy().allows), *interceptors)
        logger.info("caller authorization on", extra={"mode": "mtls"})
    else:
        logger.warning(
            "TGM_INSECURE_DEV=1 and no TLS: callers cannot be identified, every caller is trusted (development only)"
        )
    server, health_servicer = build_server(max_workers=settings.grpc_max_workers, interceptors=interceptors)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)
    port = add_server_port(server, settings.registry_listen)  # mTLS when TLS_* env is set (issue 4)
    if port == 0:
        logger.error("cannot listen", extra={"listen": settings.registry_listen})
        return 1
    stop = stop_event_on_signals(logger)
    server.start()
    # Before reporting SERVING, so that whoever waits for the registry finds the manager bot in place.
    start_manager_registration(container.register_bot(), settings.manager_bot_token.get_secret_value(), stop)
    mark_serving(health_servicer, SERVICE_NAME)

    def report(healthy: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, status)  # no-op once graceful shutdown began

    database_ok = threading.Event()

    def report_and_remember(healthy: bool) -> None:
        (database_ok.set if healthy else database_ok.clear)()
        report(healthy)

    database_ok.set()
    DatabaseHealthWatcher(select_one(container.engine()), report_and_remember).start(stop)
    EventRetention(container.purge_events(), settings.event_purge_interval_seconds).start(stop)
    from prometheus_client import REGISTRY

    from tgm.observability.metrics import CachedGaugeCollector, start_metrics_server

    if settings.metrics_port > 0:
        bots = container.bots()
        REGISTRY.register(CachedGaugeCollector("telegram_active_bots", "Bots serving updates", bots.count_active))

    metrics = start_metrics_server(
        "botregistry",
        settings.metrics_host,
        settings.metrics_port,
        readiness=lambda: {"database": database_ok.is_set()},
    )
    logger.info("botregistry serving", extra={"listen": settings.registry_listen, "port": port})
    try:
        stop.wait()
    finally:
        # Tell load balancers first, then let in-flight calls finish within the grace period.
        health_servicer.enter_graceful_shutdown()
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        server.stop(grace=settings.shutdown_grace_seconds).wait()
        if metrics is not None:
            metrics.stop()
        container.engine().dispose()
        container.vault_channel().close()  # created with the servicer above
        logger.info("botregistry stopped")
    return 0


def purge_events(settings: RegistrySettings) -> int:
    """Deletes the events older than EVENT_RETENTION_DAYS once; exit 1 when the database refused."""
    container = Container()
    container.settings.override(settings)
    try:
        gone = EventRetention(container.purge_events(), 0).purge_once()
    finally:
        container.engine().dispose()
    if gone is None:
        return 1
    print(f"purged {gone} events older than {settings.event_retention_days} days")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgm.services.botregistry")
    parser.add_argument("command", choices=("serve", "migrate", "rewrap", "purge-events"))
    args = parser.parse_args(argv)
    settings = RegistrySettings()
    configure_logging("botregistry", settings.log_level)
    configure_error_tracking("botregistry")
    if args.command == "migrate":
        run_migrations(settings)
        return 0
    if args.command == "purge-events":
        return purge_events(settings)
    if args.command == "rewrap":
        from tgm.services.botregistry.rewrap import main as rewrap_main

        return rewrap_main(settings)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
