"""GrpcRouteDirectory / GrpcBotDirectory against an in-process gRPC server with a fake registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from tgm.domain.bots import BotStatus, hash_webhook_secret
from tgm.domain.clock import ManualClock
from tgm.grpc_runtime.channels import build_server, open_channel
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.registry_client.client import GrpcBotDirectory, GrpcRouteDirectory, RegistryUnavailable


class FakeRegistry(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_with: grpc.StatusCode | None = None
        # GetRoute for an id in `held` waits until `release` is set.
        self.held: set[str] = set()
        self.release = threading.Event()
        # Bots GetBot knows, with their versions; GetBotVersions answers only when `versions_supported`.
        self.bot_versions: dict[str, int] = {"bot-1": 1}
        self.versions_supported = False
        self.route_secret = "s3cret"
        self.bot_status = registry_pb2.BOT_STATUS_ACTIVE
        self.fail_get_route = False

    def GetRoute(self, request, context):
        self.calls.append(f"route:{request.public_id}")
        if request.public_id in self.held:
            self.release.wait(timeout=10)
        if self.fail_with is not None:
            context.abort(self.fail_with, "boom")
        if self.fail_get_route:
            context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        if request.public_id != "pub-1" or "bot-1" not in self.bot_versions:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such bot")
        return registry_pb2.GetRouteResponse(
            bot_id="bot-1",
            status=registry_pb2.BOT_STATUS_ACTIVE,
            webhook_secret_sha256=hash_webhook_secret(self.route_secret),
            version=self.bot_versions["bot-1"],
        )

    def GetBot(self, request, context):
        self.calls.append(f"bot:{request.bot_id}")
        if request.bot_id in self.held:
            self.release.wait(timeout=10)
        if self.fail_with is not None:
            context.abort(self.fail_with, "boom")
        if request.bot_id not in self.bot_versions:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such bot")
        return registry_pb2.GetBotResponse(
            bot=registry_pb2.Bot(
                bot_id=request.bot_id,
                version=self.bot_versions[request.bot_id],
                public_id="pub-1",
                owner_id=7,
                telegram_bot_id=123,
                username="TestBot",
                status=self.bot_status,
                welcome_text="hi",
                sealed_token=b"sealed",
                language="en",
            )
        )

    def GetBotVersions(self, request, context):
        self.calls.append("versions:" + ",".join(sorted(request.bot_ids)))
        if not self.versions_supported:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "older registry")
        if self.fail_with is not None:
            context.abort(self.fail_with, "boom")
        known = {bot_id: self.bot_versions[bot_id] for bot_id in request.bot_ids if bot_id in self.bot_versions}
        return registry_pb2.GetBotVersionsResponse(versions=known)


@pytest.fixture
def registry() -> Iterator[tuple[FakeRegistry, grpc.Channel]]:
    fake = FakeRegistry()
    server, _ = build_server(max_workers=4)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    yield fake, channel
    channel.close()
    server.stop(grace=None)


def test_route_is_mapped_and_cached_until_ttl(registry) -> None:
    fake, channel = registry
    clock = ManualClock()
    routes = GrpcRouteDirectory(channel, ttl_seconds=30, negative_ttl_seconds=2, clock=clock)
    route = routes.route_for("pub-1")
    assert route is not None
    assert route.bot_id == "bot-1" and route.accepts_updates
    assert route.webhook_secret_sha256 == hash_webhook_secret("s3cret")
    assert routes.route_for("pub-1") == route
    assert fake.calls == ["route:pub-1"]
    clock.advance(31)
    routes.route_for("pub-1")
    assert fake.calls == ["route:pub-1", "route:pub-1"]


def test_unknown_route_is_none_and_cached_briefly(registry) -> None:
    fake, channel = registry
    clock = ManualClock()
    routes = GrpcRouteDirectory(channel, ttl_seconds=30, negative_ttl_seconds=2, clock=clock)
    assert routes.route_for("nope") is None
    assert routes.route_for("nope") is None
    assert fake.calls == ["route:nope"]
    clock.advance(2.5)
    assert routes.route_for("nope") is None
    assert fake.calls == ["route:nope", "route:nope"]


def test_registry_failure_raises_registry_unavailable_and_is_not_cached(registry) -> None:
    fake, channel = registry
    routes = GrpcRouteDirectory(channel, clock=ManualClock())
    fake.fail_with = grpc.StatusCode.INTERNAL
    with pytest.raises(RegistryUnavailable):
        routes.route_for("pub-1")
    fake.fail_with = None
    assert routes.route_for("pub-1") is not None


def test_unreachable_registry_raises_registry_unavailable() -> None:
    channel = open_channel("127.0.0.1:1")
    try:
        with pytest.raises(RegistryUnavailable):
            GrpcRouteDirectory(channel, timeout_seconds=0.5).route_for("pub-1")
    finally:
        channel.close()


def test_cache_is_bounded(registry) -> None:
    fake, channel = registry
    routes = GrpcRouteDirectory(channel, clock=ManualClock(), max_entries=2, max_negative_entries=2)
    for public_id in ("a", "b", "c"):
        routes.route_for(public_id)
    routes.route_for("a")  # evicted: asked again
    assert fake.calls.count("route:a") == 2


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_cached_answers_hits_only_and_never_calls_the_registry(registry) -> None:
    fake, channel = registry
    routes = GrpcRouteDirectory(channel, clock=ManualClock())
    assert routes.cached("pub-1") == (False, None)
    route = routes.route_for("pub-1")
    routes.route_for("nope")
    assert routes.cached("pub-1") == (True, route)
    assert routes.cached("nope") == (True, None)
    assert routes.cached("other") == (False, None)
    assert fake.calls == ["route:pub-1", "route:nope"]


def test_unknown_ids_never_evict_real_routes(registry) -> None:
    fake, channel = registry
    routes = GrpcRouteDirectory(channel, clock=ManualClock(), max_entries=2, max_negative_entries=4)
    assert routes.route_for("pub-1") is not None
    for n in range(20):
        assert routes.route_for(f"random-{n}") is None
    assert routes.route_for("pub-1") is not None
    assert fake.calls.count("route:pub-1") == 1


def test_concurrent_misses_for_one_id_make_a_single_call(registry) -> None:
    fake, channel = registry
    routes = GrpcRouteDirectory(channel, clock=ManualClock())
    fake.held.add("pub-1")
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(routes.route_for("pub-1"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    _wait_until(lambda: len(fake.calls) >= 1)
    time.sleep(0.2)  # without single-flight, the other misses would reach the registry meanwhile
    fake.release.set()
    for thread in threads:
        thread.join(timeout=5)
    assert fake.calls == ["route:pub-1"]
    assert len(results) == 6 and all(r is not None and r == results[0] for r in results)


def test_concurrent_misses_share_a_registry_failure(registry) -> None:
    fake, channel = registry
    routes = GrpcRouteDirectory(channel, clock=ManualClock())
    fake.fail_with = grpc.StatusCode.INTERNAL
    fake.held.add("pub-1")
    errors: list[BaseException] = []

    def lookup() -> None:
        try:
            routes.route_for("pub-1")
        except RegistryUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lookup) for _ in range(3)]
    for thread in threads:
        thread.start()
    _wait_until(lambda: len(fake.calls) >= 1)
    time.sleep(0.2)
    fake.release.set()
    for thread in threads:
        thread.join(timeout=5)
    assert len(errors) == 3 and fake.calls == ["route:pub-1"]
    fake.fail_with = None
    fake.held.clear()
    assert routes.route_for("pub-1") is not None  # failures are not cached


def test_refresh_is_throttled_per_bot(registry) -> None:
    fake, channel = registry
    clock = ManualClock()
    routes = GrpcRouteDirectory(channel, clock=clock)
    routes.route_for("pub-1")
    routes.refreshed_route("pub-1")
    routes.refreshed_route("pub-1")  # within a second: the cached route
    assert fake.calls == ["route:pub-1", "route:pub-1"]
    clock.advance(1.5)
    routes.refreshed_route("pub-1")
    assert fake.calls == ["route:pub-1"] * 3


def test_a_slow_registry_call_in_refresh_does_not_block_other_bots(registry) -> None:
    fake, channel = registry
    clock = ManualClock()
    routes = GrpcRouteDirectory(channel, negative_ttl_seconds=0, clock=clock, timeout_seconds=10)
    assert routes.refreshed_route("slow") is None  # starts the throttle window; nothing cached (ttl 0)
    fake.held.add("slow")
    # Throttled with nothing cached: this one goes to the registry, and hangs there.
    slow = threading.Thread(target=routes.refreshed_route, args=("slow",))
    slow.start()
    _wait_until(lambda: fake.calls.count("route:slow") == 2)
    done = threading.Event()
    other = threading.Thread(target=lambda: (routes.refreshed_route("pub-1"), done.set()))
    other.start()
    try:
        assert done.wait(timeout=1), "refreshed_route for another bot waited on the slow call"
    finally:
        fake.release.set()
        slow.join(timeout=5)
        other.join(timeout=5)


def test_bot_is_mapped_to_the_domain(registry) -> None:
    fake, channel = registry
    fake.bot_status = registry_pb2.BOT_STATUS_DISABLED
    bots = GrpcBotDirectory(channel, ttl_seconds=5, clock=ManualClock())
    bot = bots.get_bot("bot-1")
    assert bot is not None
    assert (bot.id, bot.public_id, bot.owner_id, bot.telegram_bot_id, bot.username) == (
        "bot-1",
        "pub-1",
        7,
        123,
        "TestBot",
    )
    assert bot.status is BotStatus.DISABLED and not bot.serves_updates
    assert bot.sealed_token == b"sealed"
    assert bot.settings.welcome_text == "hi" and bot.settings.language == "en"
    assert bots.get_bot("bot-1") is bot
    assert bots.get_bot("missing") is None
    assert fake.calls == ["bot:bot-1", "bot:missing"]


def test_an_expired_route_answers_while_one_background_lookup_refreshes_it(registry) -> None:
    fake, channel = registry
    clock = ManualClock()
    routes = GrpcRouteDirectory(channel, ttl_seconds=30, clock=clock, stale_seconds=30)
    first = routes.route_for("pub-1")
    clock.advance(31)  # expired, but within the stale window
    for _ in range(5):
        assert routes.cached("pub-1") == (True, first)  # answered at once, no caller waits on the registry
    deadline = time.monotonic() + 10
    while fake.calls.count("route:pub-1") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # let a wrongly duplicated refresh show up (checked after, not used as synchronisation)
    assert fake.calls.count("route:pub-1") == 2, "one refresh for five stale hits"
    assert routes.cached("pub-1") == (True, first)


def test_a_route_expired_beyond_the_stale_window_is_a_miss(registry) -> None:
    fake, channel = registry
    clock = ManualClock()
    routes = GrpcRouteDirectory(channel, ttl_seconds=30, clock=clock, stale_seconds=30)
    routes.route_for("pub-1")
    clock.advance(61)
    assert routes.cached("pub-1") == (False, None)
    assert fake.calls == ["route:pub-1"]


def test_an_expired_bot_answers_while_one_background_lookup_refreshes_it(registry) -> None:
    fake, channel = registry
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=5, clock=clock)
    first = bots.get_bot("bot-1")
    clock.advance(6)  # expired, within the stale window (the TTL by default)
    for _ in range(5):
        assert bots.get_bot("bot-1") is first  # no caller waits on the registry
    _wait_until(lambda: fake.calls.count("bot:bot-1") >= 2)
    time.sleep(0.05)  # let a wrongly duplicated refresh show up (checked after, not used as synchronisation)
    assert fake.calls.count("bot:bot-1") == 2, "one refresh for five stale hits"
    refreshed = bots.get_bot("bot-1")
    assert refreshed is not None and refreshed is not first  # the refresh replaced the entry
    clock.advance(11)  # beyond TTL + stale window: a blocking lookup again
    assert bots.get_bot("bot-1") is not refreshed
    assert fake.calls.count("bot:bot-1") == 3


def test_concurrent_bot_misses_share_one_registry_call(registry) -> None:
    fake, channel = registry
    fake.held.add("bot-1")  # GetBot waits for `release`: every caller arrives while the first call is open
    bots = GrpcBotDirectory(channel, clock=ManualClock())
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(bots.get_bot("bot-1"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    _wait_until(lambda: len(fake.calls) >= 1)
    time.sleep(0.05)  # give a wrongly duplicated call time to show up (asserted below, not used as synchronisation)
    fake.release.set()
    for thread in threads:
        thread.join(timeout=5)
    assert len(results) == 6 and all(result is results[0] for result in results)
    assert fake.calls == ["bot:bot-1"]


def test_expired_bots_are_checked_in_one_versions_call_and_only_changed_ones_fetched(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    fake.bot_versions = {"bot-1": 1, "bot-2": 1, "bot-3": 1}
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=5, clock=clock)
    before = {bot_id: bots.get_bot(bot_id) for bot_id in fake.bot_versions}
    fake.bot_versions["bot-2"] = 2  # changed in the registry
    del fake.bot_versions["bot-3"]  # gone
    fake.calls.clear()
    clock.advance(6)  # all three expired, within the stale window

    assert bots.revalidate() == 2
    assert fake.calls == ["versions:bot-1,bot-2,bot-3", "bot:bot-2"]
    assert bots.get_bot("bot-1") is before["bot-1"]  # unchanged: renewed for another TTL without a GetBot
    changed = bots.get_bot("bot-2")
    assert changed is not None and changed.version == 2
    assert bots.get_bot("bot-3") is None  # dropped: this lookup asked the registry, which no longer knows it
    assert fake.calls == ["versions:bot-1,bot-2,bot-3", "bot:bot-2", "bot:bot-3"]


def test_stale_hits_answer_at_once_and_start_one_versions_check(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=5, clock=clock)
    first = bots.get_bot("bot-1")
    clock.advance(6)
    for _ in range(5):
        assert bots.get_bot("bot-1") is first  # no caller waits on the registry
    _wait_until(lambda: "versions:bot-1" in fake.calls)
    time.sleep(0.05)  # let a wrongly duplicated check show up (asserted below, not used as synchronisation)
    assert fake.calls == ["bot:bot-1", "versions:bot-1"]


def test_bots_far_from_expiry_are_not_checked(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    fake.bot_versions = {"bot-1": 1, "bot-2": 1}
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=10, clock=clock)
    bots.get_bot("bot-1")
    clock.advance(8)
    bots.get_bot("bot-2")  # fresh for 10 s more
    fake.calls.clear()
    clock.advance(3)  # bot-1 expired; bot-2 has 7 s left, more than half a TTL
    assert bots.revalidate() == 0
    assert fake.calls == ["versions:bot-1"]


def test_a_failed_versions_check_keeps_serving_the_stale_bot(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=5, clock=clock)
    first = bots.get_bot("bot-1")
    fake.fail_with = grpc.StatusCode.UNAVAILABLE
    clock.advance(6)
    with pytest.raises(RegistryUnavailable):
        bots.revalidate()
    assert bots.get_bot("bot-1") is first  # still within the stale window
    clock.advance(5)  # beyond it: a caller's own lookup, which fails as the registry does
    with pytest.raises(RegistryUnavailable):
        bots.get_bot("bot-1")


def test_an_older_registry_without_bot_versions_gets_per_bot_refreshes(registry) -> None:
    fake, channel = registry  # versions_supported is False: GetBotVersions is UNIMPLEMENTED
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=5, clock=clock)
    bots.get_bot("bot-1")
    fake.bot_versions["bot-1"] = 2
    clock.advance(6)
    bots.get_bot("bot-1")
    _wait_until(lambda: (bot := bots.get_bot("bot-1")) is not None and bot.version == 2)
    assert fake.calls == ["bot:bot-1", "versions:bot-1", "bot:bot-1"]
    clock.advance(6)
    bots.get_bot("bot-1")  # from now on straight to the per-bot refresh: the bulk call is not tried again
    _wait_until(lambda: fake.calls.count("bot:bot-1") == 3)
    assert fake.calls.count("versions:bot-1") == 1


def test_a_rotated_secret_replaces_the_cached_route_at_the_next_revalidation(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    routes = GrpcRouteDirectory(channel, ttl_seconds=30, clock=ManualClock())
    old = routes.route_for("pub-1")
    assert old is not None and old.version == 1
    assert routes.revalidate() == 0 and routes.cached("pub-1") == (True, old)  # unchanged: no GetRoute

    fake.route_secret, fake.bot_versions["bot-1"] = "rotated", 2
    assert routes.revalidate() == 1
    hit, new = routes.cached("pub-1")
    assert hit and new is not None and new.webhook_secret_sha256 == hash_webhook_secret("rotated")
    assert fake.calls == ["route:pub-1", "versions:bot-1", "versions:bot-1", "route:pub-1"]


def test_a_deleted_bot_route_is_dropped_at_the_next_revalidation(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    routes = GrpcRouteDirectory(channel, ttl_seconds=30, clock=ManualClock())
    routes.route_for("pub-1")
    del fake.bot_versions["bot-1"]
    assert routes.revalidate() == 1
    assert routes.cached("pub-1") == (True, None)  # known as unknown: webhooks for it are refused


def test_a_changed_route_that_cannot_be_fetched_is_dropped_not_kept(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    routes = GrpcRouteDirectory(channel, ttl_seconds=30, clock=ManualClock())
    routes.route_for("pub-1")
    fake.bot_versions["bot-1"] = 2
    fake.fail_get_route = True
    assert routes.revalidate() == 1
    assert routes.cached("pub-1") == (False, None)  # fail closed: the next webhook asks the registry itself
    with pytest.raises(RegistryUnavailable):
        routes.route_for("pub-1")


def test_routes_stay_when_versions_cannot_be_read(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    routes = GrpcRouteDirectory(channel, ttl_seconds=30, clock=ManualClock())
    route = routes.route_for("pub-1")
    fake.fail_with = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(RegistryUnavailable):
        routes.revalidate()
    assert routes.cached("pub-1") == (True, route)  # the TTL still bounds it


def test_the_background_revalidation_picks_up_a_rotation_within_its_interval(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    routes = GrpcRouteDirectory(channel, ttl_seconds=300, revalidate_seconds=0.05)
    try:
        routes.route_for("pub-1")
        fake.route_secret, fake.bot_versions["bot-1"] = "rotated", 2

        def rotated() -> bool:
            _, route = routes.cached("pub-1")
            return route is not None and route.webhook_secret_sha256 == hash_webhook_secret("rotated")

        _wait_until(rotated)  # well before the 300 s TTL
    finally:
        routes.close()
    assert routes.route_for("pub-1") is not None and routes._revalidator is not None
    assert not routes._revalidator.is_alive()  # closed: the thread ended and is not started again


def test_a_cached_inactive_bot_is_read_again_before_it_is_answered(registry) -> None:
    fake, channel = registry
    fake.bot_status = registry_pb2.BOT_STATUS_DISABLED
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=5, clock=clock, inactive_recheck_seconds=1)
    disabled = bots.get_bot("bot-1")
    assert disabled is not None and not disabled.serves_updates
    fake.bot_status = registry_pb2.BOT_STATUS_ACTIVE  # re-enabled while the disabled copy is fresh in the cache
    assert bots.get_bot("bot-1") is disabled  # read this very second: not asked again (a spammed bot stays cheap)

    clock.advance(1.5)  # still within the TTL
    enabled = bots.get_bot("bot-1")
    assert enabled is not None and enabled.serves_updates  # the update is served, not dropped for a stale status
    assert bots.get_bot("bot-1") is enabled
    assert fake.calls == ["bot:bot-1", "bot:bot-1"]


def test_a_bot_that_stays_disabled_is_read_at_most_once_per_interval(registry) -> None:
    fake, channel = registry
    fake.bot_status = registry_pb2.BOT_STATUS_DISABLED
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=30, clock=clock, inactive_recheck_seconds=1)
    for _ in range(3):
        for _ in range(10):
            bot = bots.get_bot("bot-1")
            assert bot is not None and not bot.serves_updates
        clock.advance(1)
    assert fake.calls == ["bot:bot-1"] * 3


def test_an_answer_read_before_a_forget_is_not_cached_after_it(registry) -> None:
    fake, channel = registry
    fake.held.add("bot-1")  # GetBot waits for `release`
    bots = GrpcBotDirectory(channel, ttl_seconds=30, clock=ManualClock())
    first: list[object] = []
    reader = threading.Thread(target=lambda: first.append(bots.get_bot("bot-1")))
    reader.start()
    _wait_until(lambda: fake.calls == ["bot:bot-1"])
    bots.forget("bot-1")  # the bot changed while that answer was on its way
    fake.release.set()
    reader.join(timeout=5)
    assert first and first[0] is not None  # the caller still gets it…
    fake.held.clear()
    bots.get_bot("bot-1")
    assert fake.calls == ["bot:bot-1", "bot:bot-1"]  # …but it was not cached: the next lookup asks again


def test_revalidation_drops_entries_nobody_asked_for_within_the_stale_window(registry) -> None:
    fake, channel = registry
    fake.versions_supported = True
    fake.bot_versions = {"bot-1": 1, "bot-2": 1}
    clock = ManualClock()
    bots = GrpcBotDirectory(channel, ttl_seconds=5, clock=clock)
    bots.get_bot("bot-1")
    clock.advance(6)
    bots.get_bot("bot-2")
    clock.advance(6)  # bot-1 expired 7 s ago (beyond the 5 s stale window); bot-2 just expired
    fake.calls.clear()
    assert bots.revalidate() == 0
    assert fake.calls == ["versions:bot-2"]  # bot-1 is not checked (nor renewed forever): it was dropped
