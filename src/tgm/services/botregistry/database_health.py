"""The registry's gRPC health follows its database (issue 9): NOT_SERVING while the database does not answer,
SERVING again once it does. Load balancers and probes see the real state; the registry itself keeps running (its
calls answer UNAVAILABLE meanwhile, see grpc/database_errors.py) and needs no restart when the database is back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0


class DatabaseHealthWatcher:
    def __init__(
        self,
        probe: Callable[[], object],
        report: Callable[[bool], None],
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self._probe = probe
        self._report = report
        self._interval = interval_seconds
        self._healthy: bool | None = None  # what was last reported; None: nothing yet

    def check_once(self) -> bool:
        """Probes the database; reports a change of state (only a change). Never raises."""
        try:
            self._probe()
            healthy = True
        except Exception as error:
            healthy = False
            failure = type(error).__name__
        if healthy != self._healthy:
            self._report(healthy)
            if healthy:
                logger.info("database reachable: serving")
            else:
                logger.warning("database unreachable: not serving", extra={"error": failure})
            self._healthy = healthy
        return healthy

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self.check_once()

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="database-health", daemon=True)
        thread.start()
        return thread


def select_one(engine: object) -> Callable[[], object]:
    """A probe: one `SELECT 1` on a connection from the registry's pool."""
    from sqlalchemy import Engine, text

    assert isinstance(engine, Engine)

    def probe() -> object:
        with engine.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar()

    return probe
