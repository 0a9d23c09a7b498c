"""RouteDirectory and BotDirectory over the registry's gRPC API, with small in-process TTL caches.

Proto ↔ domain mapping lives here and nowhere else.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Generic, TypeVar

import grpc

from tgm.domain.bots import ApiCommand, Bot, BotSettings, BotStatus, CaptchaMode, RateRule
from tgm.domain.clock import SystemClock
from tgm.domain.errors import DependencyUnavailable
from tgm.domain.ports import Clock, Route
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc

logger = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT_SECONDS = 2.0
DEFAULT_MAX_ENTRIES = 10_000
MAX_VERSION_IDS_PER_CALL = 1000  # the registry's limit for GetBotVersions
BULK_RETRY_SECONDS = 300.0  # after UNIMPLEMENTED (an older registry), how long before GetBotVersions is tried again
# Unknown ids get their own, smaller cache: a flood of random public_ids must never evict real routes.
DEFAULT_MAX_NEGATIVE_ENTRIES = 1_024

_STATUS_FROM_PROTO: dict[int, BotStatus] = {
    registry_pb2.BOT_STATUS_PENDING: BotStatus.PENDING,
    registry_pb2.BOT_STATUS_ACTIVE: BotStatus.ACTIVE,
    registry_pb2.BOT_STATUS_DISABLED: BotStatus.DISABLED,
    registry_pb2.BOT_STATUS_DELETED: BotStatus.DELETED,
    registry_pb2.BOT_STATUS_FAILED: BotStatus.FAILED,
}
# The registry does not send timestamps with a Bot; readers of a Bot must not rely on them.
_UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)


class RegistryUnavailable(DependencyUnavailable):
    """The registry could not be reached or failed; the caller may retry later (gateway: 503)."""


class RegistryUnimplemented(RegistryUnavailable):
    """The registry does not know the method (an older registry during a rolling upgrade)."""


def status_from_proto(value: int) -> BotStatus:
    """Unknown/unspecified statuses map to PENDING: such a bot never serves updates."""
    return _STATUS_FROM_PROTO.get(value, BotStatus.PENDING)


def route_from_proto(reply: registry_pb2.GetRouteResponse) -> Route:
    return Route(
        bot_id=reply.bot_id,
        webhook_secret_sha256=bytes(reply.webhook_secret_sha256),
        accepts_updates=status_from_proto(reply.status) is BotStatus.ACTIVE,
        is_manager=reply.is_manager,
        version=reply.version,
    )


def _captcha_mode(value: str) -> CaptchaMode:
    try:
        return CaptchaMode(value)
    except ValueError:
        return CaptchaMode.AUTO  # empty from an older registry: the default


def bot_from_proto(message: registry_pb2.Bot) -> Bot:
    return Bot(
        id=message.bot_id,
        public_id=message.public_id,
        owner_id=message.owner_id,
        telegram_bot_id=message.telegram_bot_id,
        username=message.username,
        status=status_from_proto(message.status),
        sealed_token=bytes(message.sealed_token),
        # Not part of the dispatcher's view: the gateway checks secrets through GetRoute.
        webhook_secret_sha256=b"",
        settings=BotSettings(
            welcome_text=message.welcome_text,
            maintenance_text=message.maintenance_text,
            blocked_users=dict(message.blocked_users),
            rate_limits={
                action: RateRule(rule.limit, rule.window_seconds) for action, rule in message.rate_limits.items()
            },
            cooldowns=dict(message.cooldowns),
            captcha_mode=_captcha_mode(message.captcha_mode),
            inbox_enabled=message.inbox_enabled,
            language=message.language or "pt-BR",
            custom_commands=dict(message.custom_commands),
            api_commands={
                api.command: ApiCommand(url=api.url, method=api.method or "GET", timeout_seconds=api.timeout_seconds)
                for api in message.api_commands
            },
        ),
        created_at=_UNKNOWN_TIME,
        updated_at=_UNKNOWN_TIME,
        is_manager=message.is_manager,
        version=message.version,
    )


_V = TypeVar("_V")


class _TtlCache(Generic[_V]):
    """A bounded, thread-safe LRU with per-entry expiry on a monotonic clock."""

    def __init__(self, clock: Clock, max_entries: int) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, _V]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every delete/clear: a fetch that started before one must not put back what was dropped (an
        # answer read before a change landing after the change was announced).
        self._epoch = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    def get(self, key: str, stale_seconds: float = 0.0) -> tuple[bool, _V | None]:
        """(True, value) while fresh. With `stale_seconds`, an entry expired less than that long ago is returned
        as (False, value): usable while a fresh one is fetched. Older entries are dropped."""
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            expires_at, value = entry
            if expires_at <= now:
                if now - expires_at < stale_seconds:
                    return False, value
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, value

    def put(self, key: str, value: _V, ttl_seconds: float, *, read_at_epoch: int | None = None) -> None:
        """With `read_at_epoch`, nothing is stored when something was dropped since then (the next lookup asks
        again: a rare extra call instead of a stale entry)."""
        if ttl_seconds <= 0:
            return
        expires_at = self._clock.monotonic() + ttl_seconds
        with self._lock:
            if read_at_epoch is not None and read_at_epoch != self._epoch:
                return
            self._entries[key] = (expires_at, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def items(self) -> list[tuple[str, _V]]:
        with self._lock:
            return [(key, value) for key, (_, value) in self._entries.items()]

    def expiring(self, within_seconds: float, stale_seconds: float) -> list[tuple[str, _V]]:
        """Entries whose life ends within `within_seconds`, expired ones still within `stale_seconds` included;
        those expired longer ago are dropped (nobody asked for them since: not worth checking)."""
        now = self._clock.monotonic()
        horizon = now + within_seconds
        with self._lock:
            gone = [key for key, (expires_at, _) in self._entries.items() if now - expires_at >= stale_seconds]
            for key in gone:
                del self._entries[key]
            return [(key, value) for key, (expires_at, value) in self._entries.items() if expires_at <= horizon]

    def renew(self, key: str, value: _V, ttl_seconds: float) -> None:
        """Gives `key` a new life if it still holds `value` (a newer value put meanwhile is left alone)."""
        expires_at = self._clock.monotonic() + ttl_seconds
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] is value:
                self._entries[key] = (expires_at, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._epoch += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._epoch += 1


class _CoalescedFetches(Generic[_V]):
    """Registry fetches per key, coalesced: concurrent blocking loads of one key share one call (single-flight),
    and a background refresh of a key runs at most once at a time (refresh-ahead)."""

    def __init__(self, fetch: Callable[[str], _V], thread_name: str) -> None:
        self._fetch = fetch
        self._inflight: dict[str, Future[_V]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()
        self._refresher = ThreadPoolExecutor(max_workers=2, thread_name_prefix=thread_name)

    def load(self, key: str) -> _V:
        """Blocking: the first caller for `key` fetches; concurrent callers wait for its result (or its error)."""
        with self._lock:
            pending = self._inflight.get(key)
            leader = pending is None
            if pending is None:
                pending = Future()
                self._inflight[key] = pending
        if not leader:
            return pending.result()
        try:
            value = self._fetch(key)
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            pending.set_result(value)
            return value
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def refresh_in_background(self, key: str) -> None:
        """One background fetch of `key` unless one is already running; a failure leaves the cache as it was."""
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
        try:
            self._refresher.submit(self._refresh, key)
        except RuntimeError:  # shut down: the next miss fetches inline
            with self._lock:
                self._refreshing.discard(key)

    def _refresh(self, key: str) -> None:
        try:
            self._fetch(key)
        except RegistryUnavailable:
            pass  # the stale value serves until it is too old; then a caller's own load answers or fails
        finally:
            with self._lock:
                self._refreshing.discard(key)


def _call(rpc: Callable[[], _V]) -> _V | None:
    """Runs one RPC: NOT_FOUND → None, any other failure → RegistryUnavailable (no server text kept)."""
    try:
        return rpc()
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        if code is grpc.StatusCode.NOT_FOUND:
            return None
        if code is grpc.StatusCode.UNIMPLEMENTED:
            raise RegistryUnimplemented("registry call failed: UNIMPLEMENTED") from None
        name = code.name if code is not None else "UNKNOWN"
        raise RegistryUnavailable(f"registry call failed: {name}") from None


def _current_versions(
    stub: registry_pb2_grpc.RegistryServiceStub, bot_ids: list[str], timeout: float
) -> dict[str, int]:
    """bot_id → current version for the named bots that exist: GetBotVersions, MAX_VERSION_IDS_PER_CALL ids a call.
    Raises RegistryUnavailable (RegistryUnimplemented from an older registry) before anything is returned."""
    wanted = sorted(set(bot_ids))
    versions: dict[str, int] = {}
    for start in range(0, len(wanted), MAX_VERSION_IDS_PER_CALL):
        request = registry_pb2.GetBotVersionsRequest(bot_ids=wanted[start : start + MAX_VERSION_IDS_PER_CALL])
        reply = _call(functools.partial(stub.GetBotVersions, request, timeout=timeout))
        if reply is not None:
            versions.update(reply.versions)
    return versions


class GrpcRouteDirectory:
    """RouteDirectory adapter: GetRoute, cached for `ttl_seconds`; unknown ids cached for `negative_ttl_seconds`
    in a separate, smaller cache. Concurrent misses for one public_id share a single GetRoute.

    With `revalidate_seconds`, a background thread checks every cached route's bot version that often (one
    GetBotVersions per 1000 routes): a route whose bot changed (secret rotated, disabled, deleted) is fetched
    again, or dropped when that fails, so an old secret stops working within about that long instead of the TTL.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        ttl_seconds: float = 30.0,
        negative_ttl_seconds: float = 2.0,
        clock: Clock | None = None,
        *,
        timeout_seconds: float = DEFAULT_CALL_TIMEOUT_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_negative_entries: int = DEFAULT_MAX_NEGATIVE_ENTRIES,
        min_refresh_seconds: float = 1.0,
        stale_seconds: float | None = None,
        revalidate_seconds: float | None = None,
    ) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._revalidate_seconds = revalidate_seconds
        self._revalidator: threading.Thread | None = None
        self._revalidator_lock = threading.Lock()
        self._closed = threading.Event()
        self._ttl = ttl_seconds
        self._stale_seconds = ttl_seconds if stale_seconds is None else stale_seconds
        self._fetches: _CoalescedFetches[Route | None] = _CoalescedFetches(self._fetch, "route-refresh")
        self._negative_ttl = negative_ttl_seconds
        self._timeout = timeout_seconds
        self._clock = clock or SystemClock()
        self._routes: _TtlCache[Route] = _TtlCache(self._clock, max_entries)
        self._unknown: _TtlCache[None] = _TtlCache(self._clock, max_negative_entries)
        self._min_refresh = min_refresh_seconds
        self._refreshed_at: dict[str, float] = {}
        self._refresh_lock = threading.Lock()

    def cached(self, public_id: str) -> tuple[bool, Route | None]:
        """Non-blocking (no I/O): `(True, route_or_None)` on a cache hit, `(False, None)` on a miss.

        Refresh-ahead: a route expired less than `stale_seconds` ago still answers, and one background GetRoute
        replaces it. Without it every cached bot's route expires once per TTL and its next webhook waits for the
        registry: with 100 busy bots, 1 % of all webhooks (the whole p99) paid a registry round trip.
        """
        if self._revalidator is None and self._revalidate_seconds and not self._closed.is_set():
            self._start_revalidating()
        fresh, route = self._routes.get(public_id, self._stale_seconds)
        if fresh:
            return True, route
        if route is not None:
            self._fetches.refresh_in_background(public_id)
            return True, route
        hit, _ = self._unknown.get(public_id)
        return hit, None

    def route_for(self, public_id: str) -> Route | None:
        """Blocking: a fresh cached answer, else the registry's (no stale routes here)."""
        if self._revalidator is None and self._revalidate_seconds and not self._closed.is_set():
            self._start_revalidating()
        fresh, route = self._routes.get(public_id)
        if fresh:
            return route
        hit, _ = self._unknown.get(public_id)
        if hit:
            return None
        return self._fetches.load(public_id)

    def refreshed_route(self, public_id: str) -> Route | None:
        """The route fetched again, when the cached one may be stale (a secret that did not match: rotated, or
        a status that changed). At most once per `min_refresh_seconds` per bot, so bad secrets cannot turn the
        gateway into an amplifier against the registry; otherwise the cached route. The lock only guards the
        throttle bookkeeping: registry calls are made outside it."""
        now = self._clock.monotonic()
        with self._refresh_lock:
            last = self._refreshed_at.get(public_id)
            throttled = last is not None and now - last < self._min_refresh
            if not throttled:
                self._refreshed_at[public_id] = now
                if len(self._refreshed_at) > 10_000:
                    self._refreshed_at = {k: at for k, at in self._refreshed_at.items() if now - at < self._min_refresh}
        if throttled:
            return self.route_for(public_id)
        return self._fetch(public_id)

    def _fetch(self, public_id: str) -> Route | None:
        epoch = self._routes.epoch
        reply = _call(
            lambda: self._stub.GetRoute(registry_pb2.GetRouteRequest(public_id=public_id), timeout=self._timeout)
        )
        route = route_from_proto(reply) if reply is not None and reply.bot_id else None
        if route is not None:
            self._unknown.delete(public_id)
            self._routes.put(public_id, route, self._ttl, read_at_epoch=epoch)
        else:
            self._routes.delete(public_id)
            self._unknown.put(public_id, None, self._negative_ttl)
        return route

    def revalidate(self) -> int:
        """Checks every cached route against its bot's current version; a changed one is fetched again, or
        dropped when that fails or the bot is gone (the next webhook then asks the registry itself). Returns how
        many changed. Raises RegistryUnavailable when the versions cannot be read (the routes stay as they were)."""
        # A route read from a registry that sends no version (0) cannot be compared; its TTL still bounds it.
        routes = [(public_id, route) for public_id, route in self._routes.items() if route.version]
        versions = _current_versions(self._stub, [route.bot_id for _, route in routes], self._timeout)
        changed = 0
        for public_id, route in routes:
            if versions.get(route.bot_id) == route.version:
                continue
            changed += 1
            self._routes.delete(public_id)  # fail closed: never the old route while the new one is unknown
            with contextlib.suppress(RegistryUnavailable):
                self._fetch(public_id)
        return changed

    def _start_revalidating(self) -> None:
        with self._revalidator_lock:
            if self._revalidator is not None:
                return
            # Started on first use, in the process that serves (not before a fork).
            self._revalidator = threading.Thread(target=self._revalidate_forever, name="route-revalidate", daemon=True)
            self._revalidator.start()

    def _revalidate_forever(self) -> None:
        assert self._revalidate_seconds
        failing_since: float | None = None
        logged_at = float("-inf")
        while not self._closed.wait(self._revalidate_seconds):
            try:
                self.revalidate()
                failing_since = None
            except ValueError:
                return  # the channel was closed: the process is shutting down
            except Exception as exc:
                # The routes serve as they are until TTL + stale window; said once a minute while it lasts.
                now = self._clock.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - logged_at >= 60:
                    logged_at = now
                    logger.warning(
                        "route revalidation failing: rotated secrets stay valid until the route cache expires",
                        extra={"error": type(exc).__name__, "failing_for_seconds": round(now - failing_since)},
                    )

    def close(self) -> None:
        """Stops the background revalidation (before the channel closes)."""
        self._closed.set()
        if self._revalidator is not None:
            self._revalidator.join(timeout=5)

    def invalidate(self) -> None:
        self._routes.clear()
        self._unknown.clear()


class GrpcBotDirectory:
    """BotDirectory adapter: GetBot, cached briefly (settings changes show up within `ttl_seconds` and one
    registry round trip).

    Revalidated in bulk: when a cached bot expires, one background GetBotVersions call checks every cached bot
    expiring within half a TTL (1000 ids per call) and GetBot fetches only those whose version changed; a bot
    expired less than `stale_seconds` ago is answered at once meanwhile, and concurrent misses share one call.
    Per-bot refreshes cost one GetBot per bot per TTL in every process (40/s for 100 bots, 4,000/s for 10,000
    bots over 2 processes: the registry's largest load, measured); the bulk check costs about two calls per TTL
    per process whatever the number of bots. A registry without GetBotVersions gets the per-bot refreshes.

    A cached bot that does not serve updates (disabled, deleted…) is asked for again, at most once per
    `inactive_recheck_seconds`, before it is answered: the caller drops updates for it, and an update that reached
    a bot re-enabled a moment ago must not be lost to the cache (the gateway had already seen it active).
    """

    def __init__(
        self,
        channel: grpc.Channel,
        ttl_seconds: float = 5.0,
        negative_ttl_seconds: float = 2.0,
        clock: Clock | None = None,
        *,
        timeout_seconds: float = DEFAULT_CALL_TIMEOUT_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        stale_seconds: float | None = None,
        inactive_recheck_seconds: float = 1.0,
    ) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._ttl = ttl_seconds
        self._stale_seconds = ttl_seconds if stale_seconds is None else stale_seconds
        self._clock = clock or SystemClock()
        self._inactive_recheck = inactive_recheck_seconds
        self._inactive_read_at: dict[str, float] = {}  # when each inactive bot was last read from the registry
        self._negative_ttl = negative_ttl_seconds
        self._timeout = timeout_seconds
        self._cache: _TtlCache[Bot | None] = _TtlCache(self._clock, max_entries)
        self._fetches: _CoalescedFetches[Bot | None] = _CoalescedFetches(self._fetch, "bot-refresh")
        self._revalidating = False
        self._revalidation_lock = threading.Lock()
        self._revalidator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bot-revalidate")
        self._bulk_unsupported_until = float("-inf")

    def get_bot(self, bot_id: str) -> Bot | None:
        fresh, cached = self._cache.get(bot_id, self._stale_seconds)
        if cached is not None and not cached.serves_updates:
            read_at = self._inactive_read_at.get(bot_id)
            if read_at is None or self._clock.monotonic() - read_at >= self._inactive_recheck:
                return self._fetches.load(bot_id)
        if fresh:
            return cached
        if cached is not None:
            self._revalidate_in_background(bot_id)
            return cached
        return self._fetches.load(bot_id)

    def revalidate(self) -> int:
        """Checks every cached bot expiring within half a TTL against the registry's versions: unchanged ones
        live another TTL, changed ones are fetched again, vanished ones are dropped. Returns how many were
        fetched or dropped. Raises RegistryUnavailable (the entries stay as they were)."""
        expiring = self._cache.expiring(self._ttl / 2, self._stale_seconds)
        due = [(bot_id, bot) for bot_id, bot in expiring if bot is not None]
        versions = _current_versions(self._stub, [bot_id for bot_id, _ in due], self._timeout)
        changed = 0
        for bot_id, bot in due:
            version = versions.get(bot_id)
            if version is not None and version == bot.version:
                self._cache.renew(bot_id, bot, self._ttl)
                continue
            changed += 1
            if version is None:
                self._cache.delete(bot_id)
                continue
            with contextlib.suppress(RegistryUnavailable):  # that one stays stale; the others go on
                self._fetches.load(bot_id)  # shared with any caller's concurrent miss
        return changed

    def _revalidate_in_background(self, bot_id: str) -> None:
        if self._bulk_unsupported_until > self._clock.monotonic():
            self._fetches.refresh_in_background(bot_id)
            return
        with self._revalidation_lock:
            if self._revalidating:
                return
            self._revalidating = True
        try:
            self._revalidator.submit(self._revalidate_quietly, bot_id)
        except RuntimeError:  # shut down: the next miss fetches inline
            with self._revalidation_lock:
                self._revalidating = False

    def _revalidate_quietly(self, bot_id: str) -> None:
        try:
            self.revalidate()
        except RegistryUnimplemented:
            # An older registry: per-bot refreshes, and the bulk call tried again later (it may be upgraded).
            self._bulk_unsupported_until = self._clock.monotonic() + BULK_RETRY_SECONDS
            self._fetches.refresh_in_background(bot_id)
        except RegistryUnavailable:
            pass  # stale values serve until they are too old; then a caller's own load answers or fails
        finally:
            with self._revalidation_lock:
                self._revalidating = False

    def forget(self, bot_id: str) -> None:
        """Drops one bot (it changed): the next lookup asks the registry."""
        self._cache.delete(bot_id)

    def _fetch(self, bot_id: str) -> Bot | None:
        epoch = self._cache.epoch
        reply = _call(lambda: self._stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot_id), timeout=self._timeout))
        bot = bot_from_proto(reply.bot) if reply is not None and reply.HasField("bot") else None
        if bot is not None and not bot.serves_updates:
            if len(self._inactive_read_at) >= DEFAULT_MAX_ENTRIES:
                self._inactive_read_at.clear()  # only throttles re-reads: forgetting costs one registry call each
            self._inactive_read_at[bot_id] = self._clock.monotonic()
        self._cache.put(bot_id, bot, self._ttl if bot is not None else self._negative_ttl, read_at_epoch=epoch)
        return bot

    def invalidate(self) -> None:
        self._cache.clear()
