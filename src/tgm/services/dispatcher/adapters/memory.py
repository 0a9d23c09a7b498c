"""In-memory adapters (unit tests, embedded mode)."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections import deque
from typing import Any

from tgm.domain.clock import SystemClock
from tgm.domain.ports import Clock, DeadLetter, RateDecision
from tgm.domain.redaction import redact

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


class InMemoryRateLimiter:
    """RateLimiter (GCRA, same rule as the Redis script) for one process."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._tat: dict[str, float] = {}
        self._notified: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_seconds: float) -> RateDecision:
        now = self._clock.monotonic()
        interval = window_seconds / limit
        with self._lock:
            tat = max(self._tat.get(key, now), now)
            if tat > now + window_seconds:  # set by a stricter rule: capped and kept, as the Redis script does
                tat = self._tat[key] = now + window_seconds
            allow_at = tat + interval - window_seconds
            if allow_at > now:
                notify = self._notified.get(key, -1.0) <= now
                if notify:
                    self._notified[key] = now + window_seconds
                return RateDecision(False, retry_after_seconds=allow_at - now, notify=notify)
            self._tat[key] = tat + interval
            if len(self._tat) > 10_000:
                self._tat = {k: v for k, v in self._tat.items() if v > now}
                self._notified = {k: v for k, v in self._notified.items() if v > now}
            return RateDecision(True)


class _Expiring:
    prune_at = 10_000  # past this many keys, expired entries are swept (a key never read again would stay)

    def __init__(self, clock: Clock | None) -> None:
        self._clock = clock or SystemClock()
        self._values: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._next_prune = 0

    def _prune_if_large(self, now: float) -> None:
        """Call with the lock held. The next sweep waits for twice the live keys: no sweep on every call."""
        if len(self._values) > max(self.prune_at, self._next_prune):
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
            self._next_prune = 2 * len(self._values)

    def _live(self, key: str, now: float) -> str | None:
        entry = self._values.get(key)
        if entry is None or entry[1] <= now:
            self._values.pop(key, None)
            return None
        return entry[0]


class InMemoryCooldowns(_Expiring):
    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)

    def start(self, key: str, seconds: float) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            if self._live(key, now) is not None:
                return False
            self._values[key] = ("1", now + seconds)
            self._prune_if_large(now)
            return True


class InMemoryLocks(_Expiring):
    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)

    def acquire(self, key: str, ttl_seconds: float) -> str | None:
        now = self._clock.monotonic()
        with self._lock:
            if self._live(key, now) is not None:
                return None
            owner = secrets.token_hex(16)
            self._values[key] = (owner, now + ttl_seconds)
            self._prune_if_large(now)
            return owner

    def release(self, key: str, owner_token: str) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            if self._live(key, now) != owner_token:
                return False
            del self._values[key]
            return True

    def renew(self, key: str, owner_token: str, ttl_seconds: float) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            if self._live(key, now) != owner_token:
                return False
            self._values[key] = (owner_token, now + ttl_seconds)
            return True


class InMemorySendLimiter:
    """The outbound limits (sliding windows) for one process."""

    sweep_at = 10_000  # past this many windows, those whose every hit is out of the longest span are dropped

    def __init__(
        self,
        per_bot_per_second: int = 30,
        per_chat_per_second: int = 1,
        per_group_per_minute: int = 20,
        margin: float = 0.1,
        clock: Clock | None = None,
        reserved_for_replies: int = 5,
    ) -> None:
        self._clock = clock or SystemClock()
        self._scale = 1.0 + margin
        self._limits = (per_bot_per_second, per_chat_per_second, per_group_per_minute)
        self._spare = max(1, per_bot_per_second - reserved_for_replies)
        self._hits: dict[tuple[object, ...], deque[float]] = {}
        self._paused: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0

    def pause(self, bot_id: str, seconds: float) -> None:
        with self._lock:
            until = self._clock.monotonic() + seconds
            self._paused[bot_id] = max(until, self._paused.get(bot_id, 0.0))

    def acquire_spare(self, bot_id: str, chat_id: int) -> float:
        """A broadcast's slot: granted only below the bot's limit minus the replies' reserve (RedisSendLimiter)."""
        return self.acquire(bot_id, chat_id, per_bot=self._spare)

    def acquire(self, bot_id: str, chat_id: int | None, *, per_bot: int | None = None) -> float:
        per_bot = per_bot or self._limits[0]
        _, per_chat, per_group = self._limits
        windows: list[tuple[tuple[object, ...], int, float]] = [(("bot", bot_id), per_bot, self._scale)]
        if chat_id is not None:
            if chat_id > 0:
                windows.append((("chat", bot_id, chat_id), per_chat, self._scale))
            else:
                windows.append((("chat", bot_id, chat_id), per_group, 60 * self._scale))
        now = self._clock.monotonic()
        with self._lock:
            paused = self._paused.get(bot_id, 0.0) - now
            if paused > 0:
                return paused
            wait = 0.0
            for key, limit, span in windows:
                hits = self._hits.setdefault(key, deque())
                while hits and hits[0] <= now - span:
                    hits.popleft()
                if len(hits) >= limit:
                    wait = max(wait, hits[len(hits) - limit] + span - now)
            recent = [t for t in self._hits[("bot", bot_id)] if t > now - self._scale / 4]
            burst = max(1, -(-per_bot // 4))
            if len(recent) >= burst:  # smoothing, as in the Redis script
                wait = max(wait, recent[len(recent) - burst] + self._scale / 4 - now)
            if wait > 0:
                for key, _, _ in windows:
                    if not self._hits[key]:
                        del self._hits[key]  # an empty window holds nothing: no deque per chat forever
                return wait
            for key, _, _ in windows:
                self._hits[key].append(now)
            if len(self._hits) > max(self.sweep_at, self._next_sweep):
                self._sweep(now)
                self._next_sweep = 2 * len(self._hits)  # no sweep on every call when most windows are live
            return 0.0

    def _sweep(self, now: float) -> None:
        """Call with the lock held. Drops windows that can no longer delay anything, and ended pauses."""
        longest = 60 * self._scale
        self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - longest}
        self._paused = {k: v for k, v in self._paused.items() if v > now}


class InMemoryDeadLetters:
    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, payload: dict[str, Any], reason: str, attempts: int, first_failure_at: float) -> str:
        letter = DeadLetter(
            id=uuid.uuid4().hex,
            kind=kind,
            reason=redact(reason),
            attempts=attempts,
            first_failure_at=first_failure_at,
            last_failure_at=time.time(),
            payload=payload,
        )
        with self._lock:
            self._letters[letter.id] = letter
        return letter.id

    def list(self, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            return sorted(self._letters.values(), key=lambda d: d.last_failure_at)[:limit]

    def get(self, letter_id: str) -> DeadLetter | None:
        with self._lock:
            return self._letters.get(letter_id)

    def remove(self, letter_id: str) -> bool:
        with self._lock:
            return self._letters.pop(letter_id, None) is not None

    def purge(self) -> int:
        with self._lock:
            count = len(self._letters)
            self._letters.clear()
            return count
