"""Who runs each bot (owner + co-admins), for the feedback inbox and the manager: the registry's GetBotTeam, cached.

Every inbox delivery, admin reply and Block press asks; one registry call per bot per `ttl_seconds` answers them.
A team change made through the manager (an invite redeemed, an admin revoked or leaving, the bot taken over by a
new registration) is announced like any other bot change (adapters/bot_changes.py): `forget` drops the bot here
and in every dispatcher process at once, so a revoked admin gets nothing more after the revocation's answer. The TTL
is the backstop for changes made elsewhere (the operator's CLI) and for a lost announcement.

A failed lookup raises (the inbox then fails closed: owner only, nobody else may act) and is remembered for
`failure_ttl_seconds`, so a registry that is down costs one timed-out call per bot per few seconds, not one per
message. A stale team is never served past its TTL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tgm.domain.errors import DomainError
from tgm.domain.ports import Clock
from tgm.services.dispatcher.adapters.bot_changes import ForgettingDirectory

DEFAULT_TTL_SECONDS = 30.0
DEFAULT_FAILURE_TTL_SECONDS = 2.0
LOOKUP_TIMEOUT_SECONDS = 2.0
MAX_ENTRIES = 10_000  # bots cached at once; the oldest go first past it


class TeamUnknown(DomainError):
    """The bot's team could not be learnt just now (remembered briefly after the registry failed)."""


class CachedBotTeams:
    """BotTeams (src/tgm/domain/inbox.py) over `fetch` (GrpcBotAdmin.team); thread-safe."""

    def __init__(
        self,
        fetch: Callable[[str], tuple[int, ...]],
        clock: Clock,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        failure_ttl_seconds: float = DEFAULT_FAILURE_TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._ttl = ttl_seconds
        self._failure_ttl = failure_ttl_seconds
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._teams: dict[str, tuple[float, tuple[int, ...]]] = {}
        self._failed: dict[str, float] = {}
        self._generation = 0  # bumped by forget/invalidate: a fetch that started before one is not cached

    def members(self, bot_id: str) -> tuple[int, ...]:
        now = self._clock.monotonic()
        with self._lock:
            cached = self._teams.get(bot_id)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
            failed_at = self._failed.get(bot_id)
            if failed_at is not None and now - failed_at < self._failure_ttl:
                raise TeamUnknown("the bot's team is unknown for now")
            generation = self._generation
        try:
            team = tuple(self._fetch(bot_id))
        except DomainError:
            with self._lock:
                if generation == self._generation:
                    self._failed[bot_id] = now
                    self._teams.pop(bot_id, None)
            raise
        with self._lock:
            # A forget that came while the call was out may be about this very bot: the answer could predate it.
            if generation == self._generation:
                self._failed.pop(bot_id, None)
                self._teams.pop(bot_id, None)  # re-inserted last: the dict's order is the eviction order
                self._teams[bot_id] = (now, team)
                while len(self._teams) > self._max_entries:
                    del self._teams[next(iter(self._teams))]
        return team

    def forget(self, bot_id: str) -> None:
        with self._lock:
            self._generation += 1
            self._teams.pop(bot_id, None)
            self._failed.pop(bot_id, None)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._teams.clear()
            self._failed.clear()


class ForgetEverywhere:
    """Several bot caches as one ForgettingDirectory (adapters/bot_changes.py): the bot directory and the teams."""

    def __init__(self, *caches: ForgettingDirectory) -> None:
        self._caches = caches

    def forget(self, bot_id: str) -> None:
        for cache in self._caches:
            cache.forget(bot_id)

    def invalidate(self) -> None:
        for cache in self._caches:
            cache.invalidate()


def registry_teams(channel: Any, clock: Clock, timeout_seconds: float = LOOKUP_TIMEOUT_SECONDS) -> CachedBotTeams:
    """The dispatcher's cache over GetBotTeam, with a short timeout: a user's update waits on a miss."""
    from tgm.registry_client.admin import GrpcBotAdmin

    return CachedBotTeams(GrpcBotAdmin(channel, timeout_seconds=timeout_seconds).team, clock)
