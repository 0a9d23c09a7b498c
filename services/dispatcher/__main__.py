"""`python -m services.dispatcher serve`: Dramatiq workers on Redis, in this process, stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from libs.observability.logging import configure_logging
from services.dispatcher.settings import DispatcherSettings

logger = logging.getLogger("services.dispatcher")
STOP_TIMEOUT_MS = 30_000


def serve(settings: DispatcherSettings) -> int:
    if not settings.redis_url:
        print(
            "services.dispatcher: REDIS_URL is required. For embedded mode (no Redis) run `python -m apps.embedded`.",
            file=sys.stderr,
        )
        return 2
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from services.dispatcher.container import DispatcherContainer
    from services.dispatcher.workers.actors import register_actors

    container = DispatcherContainer(settings=settings)
    broker = RedisBroker(url=settings.redis_url)  # type: ignore[no-untyped-call]
    register_actors(broker, container.handle_update, container.deduplicator())
    worker = dramatiq.Worker(broker, worker_threads=settings.dispatcher_threads)

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    worker.start()
    logger.info("dispatcher started", extra={"threads": settings.dispatcher_threads})
    try:
        while not stop.wait(1.0):
            pass
    finally:
        worker.stop(timeout=STOP_TIMEOUT_MS)
        broker.close()
        container.shutdown_resources()
        logger.info("dispatcher stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.dispatcher")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the update workers (needs REDIS_URL)")
    parser.parse_args(argv)
    settings = DispatcherSettings()
    configure_logging("dispatcher", settings.log_level)
    # Dramatiq's DEBUG lines print whole messages (update bodies); keep them out of the logs.
    logging.getLogger("dramatiq").setLevel(max(logging.INFO, logging.getLogger().level))
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
