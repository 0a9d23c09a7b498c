"""The event trail's retention job (issue 9): events older than EVENT_RETENTION_DAYS go.

The registry runs it in a background thread, at start and every EVENT_PURGE_INTERVAL_SECONDS, until its stop
event is set; `python -m tgm.services.botregistry purge-events` runs it once (for a scheduler or a cron job). Several
registry replicas purging at once is harmless: each deletes whatever is still older than the cutoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class EventRetention:
    def __init__(self, purge: Callable[[], int], interval_seconds: float) -> None:
        self._purge = purge
        self._interval = interval_seconds

    def purge_once(self) -> int | None:
        """How many events went; None when the purge failed (logged: the next turn tries again). Never raises."""
        try:
            gone = self._purge()
        except Exception as error:
            logger.warning("event purge failed", extra={"error": type(error).__name__})
            return None
        if gone:
            logger.info("expired events purged", extra={"purged": gone})
        return gone

    def run(self, stop: threading.Event) -> None:
        self.purge_once()
        while not stop.wait(self._interval):
            self.purge_once()

    def start(self, stop: threading.Event) -> threading.Thread | None:
        """The purging thread; None when the interval is 0 (purged from outside the process)."""
        if self._interval <= 0:
            return None
        thread = threading.Thread(target=self.run, args=(stop,), name="event-retention", daemon=True)
        thread.start()
        return thread
