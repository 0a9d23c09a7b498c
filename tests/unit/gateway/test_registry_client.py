"""GrpcRouteDirectory / GrpcBotDirectory against an in-process gRPC server with a fake registry."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from libs.domain.bots import BotStatus, hash_webhook_secret
from libs.domain.clock import ManualClock
from libs.grpc_runtime.channels import build_server, open_channel
from libs.registry_client.client import GrpcBotDirectory, GrpcRouteDirectory, RegistryUnavailable
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc


class FakeRegistry(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_with: grpc.StatusCode | None = None

    def GetRoute(self, request, context):
        self.calls.append(f"route:{request.public_id}")
        if self.fail_with is not None:
            context.abort(self.fail_with, "boom")
        if request.public_id != "pub-1":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such bot")
        return registry_pb2.GetRouteResponse(
            bot_id="bot-1",
            status=registry_pb2.BOT_STATUS_ACTIVE,
            webhook_secret_sha256=hash_webhook_secret("s3cret"),
        )

    def GetBot(self, request, context):
        self.calls.append(f"bot:{request.bot_id}")
        if self.fail_with is not None:
            context.abort(self.fail_with, "boom")
        if request.bot_id != "bot-1":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such bot")
        return registry_pb2.GetBotResponse(
            bot=registry_pb2.Bot(
                bot_id="bot-1",
                public_id="pub-1",
                owner_id=7,
                telegram_bot_id=123,
                username="TestBot",
                status=registry_pb2.BOT_STATUS_DISABLED,
                welcome_text="hi",
                sealed_token=b"sealed",
                language="en",
            )
        )


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
    routes = GrpcRouteDirectory(channel, clock=ManualClock(), max_entries=2)
    for public_id in ("a", "b", "c"):
        routes.route_for(public_id)
    routes.route_for("a")  # evicted: asked again
    assert fake.calls.count("route:a") == 2


def test_bot_is_mapped_to_the_domain(registry) -> None:
    fake, channel = registry
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
