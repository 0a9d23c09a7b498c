"""In-memory adapters (unit tests, embedded mode)."""

from __future__ import annotations

import threading

from libs.domain.clock import SystemClock
from libs.domain.ports import Clock

DEFAULT_TTL_SECONDS = 24 * 3600


class InMemoryUpdateDeduplicator:
    """UpdateDeduplicator in a dict with expiry; per process, so only for a single dispatcher."""

    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS, clock: Clock | None = None) -> None:
        self._ttl = ttl_seconds
        self._clock = clock or SystemClock()
        self._expiry: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self._prune_at = 1024

    def already_done(self, bot_id: str, update_id: int) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            expires_at = self._expiry.get((bot_id, update_id))
            if expires_at is None:
                return False
            if expires_at <= now:
                del self._expiry[(bot_id, update_id)]
                return False
            return True

    def mark_done(self, bot_id: str, update_id: int) -> None:
        now = self._clock.monotonic()
        with self._lock:
            current = self._expiry.get((bot_id, update_id))
            if current is None or current <= now:
                self._expiry[(bot_id, update_id)] = now + self._ttl
            if len(self._expiry) > self._prune_at:
                self._expiry = {key: at for key, at in self._expiry.items() if at > now}
                self._prune_at = max(1024, 2 * len(self._expiry))
