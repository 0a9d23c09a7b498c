"""`python -m tgm.services.dispatcher serve`: Dramatiq workers on Redis, in this process, stopped by SIGTERM/SIGINT.

`python -m tgm.services.dispatcher dead-letters list|show ID|replay ID|purge --yes`: the operators' tool.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from tgm.config.production import production_refusal
from tgm.domain.callback_tokens import MIN_KEY_BYTES
from tgm.host.lock_keeper import LockKeeperThread
from tgm.host.signals import stop_event_on_signals
from tgm.observability.error_tracking import configure_error_tracking
from tgm.observability.logging import configure_logging
from tgm.services.dispatcher.settings import DispatcherSettings

logger = logging.getLogger(__name__)
STOP_TIMEOUT_MS = 30_000


def serve(settings: DispatcherSettings, prepare: Callable[[Any], None] | None = None) -> int:
    """Runs the workers until SIGTERM/SIGINT. `prepare(container)` may override providers (tests)."""
    from tgm.grpc_runtime.tls import TlsConfigError, required_tls_from_env

    refusal = production_refusal("tgm.services.dispatcher", settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    try:
        required_tls_from_env()  # its registry and vault channels
    except TlsConfigError as exc:
        print(f"tgm.services.dispatcher: refusing to start: {exc}", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print(
            "tgm.services.dispatcher: REDIS_URL is required. "
            "For embedded mode (no Redis) run `python -m tgm.apps.embedded`.",
            file=sys.stderr,
        )
        return 2
    from tgm.grpc_runtime.tls import insecure_dev_allowed
    from tgm.messaging.envelope_signing import missing_key_problem
    from tgm.messaging.redis_acl import redis_url_problem

    problem = missing_key_problem(settings.envelope_signing_key, insecure_dev=insecure_dev_allowed())
    problem = problem or redis_url_problem(settings.redis_url, insecure_dev=insecure_dev_allowed())
    if problem:
        print(f"tgm.services.dispatcher: refusing to start: {problem}", file=sys.stderr)
        return 2
    if len(settings.callback_signing_key.get_secret_value().encode()) < MIN_KEY_BYTES:
        # Every worker process must verify the buttons any other one signed: one shared key, never a random one.
        print(f"tgm.services.dispatcher: CALLBACK_SIGNING_KEY ({MIN_KEY_BYTES}+ bytes) is required.", file=sys.stderr)
        return 2
    import dramatiq

    from tgm.services.dispatcher.adapters.actor_metrics import ActorMetrics
    from tgm.services.dispatcher.adapters.redis_broker import TimelyMaintenanceRedisBroker, dispatcher_middleware
    from tgm.services.dispatcher.container import DispatcherContainer, resolve_for_workers
    from tgm.services.dispatcher.workers.actors import register_actors

    broker = TimelyMaintenanceRedisBroker(
        url=settings.redis_url,
        middleware=dispatcher_middleware(),
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_interval_ms=settings.broker_maintenance_interval_ms,
    )
    broker.add_middleware(ActorMetrics())
    container = DispatcherContainer(settings=settings, broker=broker)
    if prepare is not None:
        prepare(container)
    container.inbound_policy()  # a malformed RATE_LIMITS_JSON / COOLDOWNS_JSON stops the start here
    register_actors(broker, container)
    resolve_for_workers(container)  # on this thread, before any worker thread resolves them
    # worker_timeout: how long an idle consumer waits on Redis; short, so delayed retries fire on time.
    worker = dramatiq.Worker(broker, worker_threads=settings.dispatcher_threads, worker_timeout=200)

    stop = stop_event_on_signals(logger)

    from tgm.services.dispatcher.adapters.bot_changes import start_listener
    from tgm.services.dispatcher.adapters.interaction_stats import start_flusher

    stop_bot_changes = start_listener(container.redis_client(), container.bot_caches())  # bots and teams
    worker.start()
    stop_stats = start_flusher(
        container.interaction_recorder(), container.registry_admin(), settings.stats_flush_interval_seconds
    )
    metrics = _start_metrics(settings, broker, worker, container.lock_keeper_thread())
    logger.info("dispatcher started", extra={"threads": settings.dispatcher_threads})
    try:
        while not stop.wait(1.0):
            pass
    finally:
        if metrics is not None:
            metrics.stop()
        worker.stop(timeout=STOP_TIMEOUT_MS)
        stop_bot_changes()
        stop_stats()
        broker.close()
        container.shutdown_resources()
        logger.info("dispatcher stopped")
    return 0


def liveness(worker_threads: Iterable[threading.Thread], keeper: LockKeeperThread) -> dict[str, bool]:
    """Alive while every worker thread runs and so does the lock keeper's: without it no lock is renewed, and every
    long handler or send would lose its chat to another drain (a restart is the cure)."""
    from tgm.observability.metrics import all_alive

    return {"worker_threads": all_alive(worker_threads), "lock_keeper": keeper.alive}


def _start_metrics(settings: DispatcherSettings, broker: Any, worker: Any, keeper: LockKeeperThread) -> Any:
    """`/metrics` (counters + queue sizes) and the probes: alive per `liveness`; ready while Redis answers too."""
    from prometheus_client import REGISTRY

    from tgm.observability.metrics import QueueSizeCollector, start_metrics_server
    from tgm.services.dispatcher.workers.actors import DISPATCHER_QUEUES

    if settings.metrics_port <= 0:
        return start_metrics_server("dispatcher", settings.metrics_host, 0)
    REGISTRY.register(QueueSizeCollector(broker.client, DISPATCHER_QUEUES))

    def alive() -> dict[str, bool]:
        return liveness(worker.workers, keeper)

    def readiness() -> dict[str, bool]:
        try:
            redis_ok = bool(broker.client.ping())
        except Exception:
            redis_ok = False
        return {**alive(), "redis": redis_ok}

    return start_metrics_server("dispatcher", settings.metrics_host, settings.metrics_port, alive, readiness)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgm.services.dispatcher")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the update workers (needs REDIS_URL)")
    from tgm.services.dispatcher import dead_letters_cli

    dead_letters_cli.add_parser(sub)
    args = parser.parse_args(argv)
    settings = DispatcherSettings()
    if args.command == "dead-letters":
        return dead_letters_cli.run(args, settings.redis_url)
    configure_logging("dispatcher", settings.log_level)
    configure_error_tracking("dispatcher")
    # Dramatiq's DEBUG lines print whole messages (update bodies); keep them out of the logs.
    logging.getLogger("dramatiq").setLevel(max(logging.INFO, logging.getLogger().level))
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
