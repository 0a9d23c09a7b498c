"""What the load/measurement control API reports: an event timeline and counters."""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from typing import Any

MAX_EVENTS = 1_000_000

# (seq, kind, bot_id, chat_id, update_id, method, at): tuples, not dicts, because a million of them are kept.
Event = tuple[int, str, int, int | None, int | None, str | None, float]


class Telemetry:
    """Timeline of "update" / "delivered" / "sent" events (bounded) and counters; all on the event loop."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.events: deque[Event] = deque(maxlen=max_events)
        # seq keeps counting across clear(): a reader polling with an old `since` never misses new events.
        self.seq = 0
        self.updates_created = 0
        self.deliveries_ok = 0
        self.deliveries_failed = 0
        self.api_calls: Counter[str] = Counter()
        self.in_flight: dict[int, int] = {}  # live; drains by itself, so clear() leaves it alone
        self.peak_in_flight: dict[int, int] = {}

    def clear(self) -> None:
        self.events.clear()
        self.updates_created = self.deliveries_ok = self.deliveries_failed = 0
        self.api_calls.clear()
        self.peak_in_flight = {bot_id: n for bot_id, n in self.in_flight.items() if n}

    def record(
        self, kind: str, bot_id: int, chat_id: int | None, update_id: int | None = None, method: str | None = None
    ) -> None:
        self.seq += 1
        self.events.append((self.seq, kind, bot_id, chat_id, update_id, method, time.time()))

    def update_created(self, bot_id: int, chat_id: int, update_id: int) -> None:
        self.updates_created += 1
        self.record("update", bot_id, chat_id, update_id)

    def delivery_started(self, bot_id: int) -> None:
        now = self.in_flight.get(bot_id, 0) + 1
        self.in_flight[bot_id] = now
        if now > self.peak_in_flight.get(bot_id, 0):
            self.peak_in_flight[bot_id] = now

    def delivery_finished(self, bot_id: int, chat_id: int, update_id: int, ok: bool) -> None:
        self.in_flight[bot_id] -= 1
        if ok:
            self.deliveries_ok += 1
            self.record("delivered", bot_id, chat_id, update_id)
        else:
            self.deliveries_failed += 1

    def page(self, since: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Events with seq > since, at most `limit`; `next` is the seq to pass as `since` for the following page."""
        events = self.events
        if not events or limit <= 0:
            return max(since, 0), []
        first = events[0][0]
        start = max(0, since - first + 1)  # seqs in the deque are contiguous
        if start >= len(events):
            return since, []
        if start > len(events) // 2:  # a deque is walked from its nearer end
            tail = len(events) - start
            picked = list(itertools.islice(reversed(events), tail))[::-1][:limit]
        else:
            picked = list(itertools.islice(events, start, start + limit))
        keys = ("seq", "kind", "bot_id", "chat_id", "update_id", "method", "at")
        return picked[-1][0], [dict(zip(keys, event, strict=True)) for event in picked]

    def metrics(self) -> dict[str, Any]:
        return {
            "updates_created": self.updates_created,
            "deliveries_ok": self.deliveries_ok,
            "deliveries_failed": self.deliveries_failed,
            "webhook_in_flight": sum(self.in_flight.values()),
            "peak_in_flight_per_bot": {str(bot_id): n for bot_id, n in self.peak_in_flight.items()},
            "api_calls": dict(self.api_calls),
        }
