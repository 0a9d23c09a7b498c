"""One retry schedule for work that failed: exponential backoff, and a gentler, longer one while a dependency is
down (errors.is_transient) — used by the chat drain (DrainPolicy) and the outbox drain (OutboxPolicy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetrySchedule:
    max_attempts: int = 4
    min_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 10.0
    # A dependency down (vault, registry, Telegram) is not the work's fault: it waits and retries at most this far
    # apart, for up to this many attempts (~1 h), before it is set aside.
    transient_max_backoff_seconds: float = 5.0
    transient_max_attempts: int = 720

    def backoff(self, attempts: int, *, transient: bool = False) -> float:
        delay = min(self.max_backoff_seconds, self.min_backoff_seconds * (2 ** max(0, attempts - 1)))
        return float(min(delay, self.transient_max_backoff_seconds) if transient else delay)

    def gives_up(self, attempts: int, *, transient: bool = False) -> bool:
        return attempts >= (self.transient_max_attempts if transient else self.max_attempts)
