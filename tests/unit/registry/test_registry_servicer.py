"""RegistryService over a real in-process gRPC server: status codes, mapping, and no token leaks.

Runs against two wirings: hand-built with the in-memory repository, and the real Container on SQLite
(migrated by Alembic) with only Telegram and the vault overridden by fakes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from dependency_injector import providers
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN, TOKEN_2, FakeTelegram
from tgm.domain.administration.register_bot import RegisterBot
from tgm.domain.clock import ManualClock
from tgm.domain.errors import TelegramUnavailable, VaultUnavailable
from tgm.grpc_runtime.channels import build_server, mark_serving
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.memory import InMemoryBotRepository
from tgm.services.botregistry.container import Container
from tgm.services.botregistry.grpc.servicer import SERVICE_NAME, RegistryServicer
from tgm.services.botregistry.settings import RegistrySettings

OWNER = 1001


class BrokenVault(InMemoryTokenVault):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def encrypt(self, bot_ref, kind, plaintext):  # type: ignore[no-untyped-def]
        raise self.error


@dataclass
class Harness:
    stub: registry_pb2_grpc.RegistryServiceStub
    channel: grpc.Channel
    telegram: FakeTelegram
    vault: InMemoryTokenVault

    def register(self, owner_id: int = OWNER, token: str = TOKEN) -> registry_pb2.RegisterBotResponse:
        return self.stub.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=owner_id, token=token), timeout=5)


def _servicer_memory(tmp_path: Path, telegram: FakeTelegram, vault: InMemoryTokenVault) -> RegistryServicer:
    bots = InMemoryBotRepository()
    return RegistryServicer(RegisterBot(bots, telegram, vault, ManualClock(), "https://hooks.test"), bots)


def _servicer_container(tmp_path: Path, telegram: FakeTelegram, vault: InMemoryTokenVault) -> RegistryServicer:
    settings = RegistrySettings(db_url=f"sqlite:///{tmp_path}/registry.db", webhook_base_url="https://hooks.test")
    migrate.upgrade(settings.db_url)
    container = Container()
    container.settings.override(providers.Object(settings))
    container.telegram.override(providers.Object(telegram))
    container.vault.override(providers.Object(vault))
    return container.servicer()  # type: ignore[no-any-return]


@pytest.fixture(params=[_servicer_memory, _servicer_container], ids=["memory", "container-sqlite"])
def make_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def make(vault: InMemoryTokenVault | None = None) -> Harness:
        telegram = FakeTelegram()
        vault = vault or InMemoryTokenVault()
        servicer = request.param(tmp_path, telegram, vault)
        server, health = build_server(max_workers=4)
        registry_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        mark_serving(health, SERVICE_NAME)
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return Harness(registry_pb2_grpc.RegistryServiceStub(channel), channel, telegram, vault)

    yield make
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(grace=None).wait()


@pytest.fixture
def h(make_harness) -> Harness:  # type: ignore[no-untyped-def]
    return make_harness()  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for secret in (TOKEN, TOKEN_2, OTHER_BOT_TOKEN):
        assert secret.split(":")[1] not in caplog.text


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code(), info.value.details()


def test_register_then_route_bot_and_list(h: Harness) -> None:
    bot = h.register().bot

    assert bot.status == registry_pb2.BOT_STATUS_ACTIVE
    assert bot.owner_id == OWNER
    assert bot.telegram_bot_id == 123456789
    assert bot.username == "first_bot"
    assert bot.sealed_token == b""  # only GetBot carries it
    assert bot.language == "pt-BR"

    route = h.stub.GetRoute(registry_pb2.GetRouteRequest(public_id=bot.public_id), timeout=5)
    secret = h.telegram.webhooks[-1][1].secret_token
    assert route.bot_id == bot.bot_id
    assert route.status == registry_pb2.BOT_STATUS_ACTIVE
    assert route.webhook_secret_sha256 == hashlib.sha256(secret.encode()).digest()
    assert route.is_manager is False
    assert h.telegram.webhooks[-1][1].url == f"https://hooks.test/webhook/{bot.public_id}"

    got = h.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id), timeout=5).bot
    assert got.sealed_token and TOKEN.encode() not in got.sealed_token
    got.ClearField("sealed_token")
    assert got == bot

    listed = h.stub.ListBots(registry_pb2.ListBotsRequest(owner_id=OWNER), timeout=5).bots
    assert [b.bot_id for b in listed] == [bot.bot_id]
    assert list(h.stub.ListBots(registry_pb2.ListBotsRequest(owner_id=OWNER + 1), timeout=5).bots) == []


def test_malformed_token_is_invalid_argument_without_echo(h: Harness) -> None:
    bad = TOKEN + "!"
    code, details = _code(lambda: h.register(token=bad))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a bot token" in details
    assert TOKEN.split(":")[1] not in details
    assert h.telegram.get_me_calls == []


def test_owner_id_must_be_positive(h: Harness) -> None:
    code, _ = _code(lambda: h.register(owner_id=0))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    code, _ = _code(lambda: h.stub.ListBots(registry_pb2.ListBotsRequest(owner_id=-5), timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def test_token_rejected_by_telegram_is_unauthenticated(h: Harness) -> None:
    h.telegram.known.clear()
    code, details = _code(h.register)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert details == "Telegram rejected the token"
    assert list(h.stub.ListBots(registry_pb2.ListBotsRequest(owner_id=OWNER), timeout=5).bots) == []


def test_bot_of_another_admin_is_already_exists(h: Harness) -> None:
    first = h.register().bot
    code, details = _code(lambda: h.register(owner_id=OWNER + 1, token=TOKEN_2))
    assert code is grpc.StatusCode.ALREADY_EXISTS
    assert "registered by another admin" in details
    after = h.stub.GetBot(registry_pb2.GetBotRequest(bot_id=first.bot_id), timeout=5).bot
    after.ClearField("sealed_token")
    assert after == first


def test_telegram_down_is_unavailable(h: Harness) -> None:
    h.telegram.get_me_error = TelegramUnavailable(f"connect failed for /bot{TOKEN}/getMe")
    code, details = _code(h.register)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert TOKEN.split(":")[1] not in details


def test_vault_down_is_unavailable(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(vault=BrokenVault(VaultUnavailable("vault Encrypt failed: UNAVAILABLE")))
    code, _ = _code(h.register)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert h.telegram.webhooks == []


def test_unexpected_error_quoting_the_token_is_internal_and_not_echoed(h: Harness) -> None:
    h.telegram.get_me_error = RuntimeError(f"boom at https://api.telegram.org/bot{TOKEN}/getMe")
    code, details = _code(h.register)
    assert code is grpc.StatusCode.INTERNAL
    assert details == "internal error"


def test_unknown_ids_are_not_found(h: Harness) -> None:
    code, _ = _code(lambda: h.stub.GetRoute(registry_pb2.GetRouteRequest(public_id="nope"), timeout=5))
    assert code is grpc.StatusCode.NOT_FOUND
    code, _ = _code(lambda: h.stub.GetRoute(registry_pb2.GetRouteRequest(public_id=""), timeout=5))
    assert code is grpc.StatusCode.NOT_FOUND
    code, _ = _code(lambda: h.stub.GetBot(registry_pb2.GetBotRequest(bot_id="nope"), timeout=5))
    assert code is grpc.StatusCode.NOT_FOUND


def test_bot_versions_name_each_known_bot_once_and_are_bounded(h: Harness) -> None:
    bot = h.register().bot
    got = h.stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot.bot_id), timeout=5).bot
    assert got.version >= 1

    reply = h.stub.GetBotVersions(registry_pb2.GetBotVersionsRequest(bot_ids=[bot.bot_id, "nope", ""]), timeout=5)
    assert dict(reply.versions) == {bot.bot_id: got.version}
    route = h.stub.GetRoute(registry_pb2.GetRouteRequest(public_id=bot.public_id), timeout=5)
    assert route.version == got.version  # the gateway compares its cached route with the versions above

    too_many = registry_pb2.GetBotVersionsRequest(bot_ids=[f"b{i}" for i in range(1001)])
    code, details = _code(lambda: h.stub.GetBotVersions(too_many, timeout=5))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "1000" in details


def test_health_is_serving(h: Harness) -> None:
    health = health_pb2_grpc.HealthStub(h.channel)
    for name in ("", SERVICE_NAME):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
