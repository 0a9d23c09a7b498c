"""`tgm events` against an in-process registry, and the `key_rotated` line `tgm keys rotate` adds to the trail."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from dependency_injector import providers

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import TOKEN, FakeTelegram
from tgm.apps.cli import events as cli
from tgm.apps.cli.__main__ import main
from tgm.apps.cli.keys import record_rotation
from tgm.domain.clock import ManualClock
from tgm.grpc_runtime.channels import build_server
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.services.botregistry import migrate
from tgm.services.botregistry.container import Container
from tgm.services.botregistry.settings import RegistrySettings

OWNER = 3003
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[grpc.Channel, str, ManualClock]]:
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(db_url)
    clock = ManualClock(T0)
    container = Container()
    container.settings.override(RegistrySettings(db_url=db_url, webhook_base_url="https://hooks.test"))
    container.telegram.override(providers.Object(FakeTelegram()))
    container.vault.override(providers.Object(InMemoryTokenVault()))
    container.clock.override(providers.Object(clock))
    server, _health = build_server(max_workers=4)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(container.servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    bot = stub.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=OWNER, token=TOKEN), timeout=5).bot
    try:
        yield channel, bot.bot_id, clock
    finally:
        channel.close()
        server.stop(0)
        container.engine().dispose()


def tgm_events(channel: grpc.Channel, *argv: str, clock: ManualClock | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tgm")
    cli.add_parser(parser.add_subparsers(dest="verb", required=True))
    return cli.run(parser.parse_args(["events", *argv]), channel, clock)


def test_events_prints_the_trail_newest_first_and_filters(
    registry: tuple[grpc.Channel, str, ManualClock], capsys: pytest.CaptureFixture[str]
) -> None:
    channel, bot_id, clock = registry
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    clock.advance(3 * 86400)
    stub.SetBotStatus(registry_pb2.SetBotStatusRequest(actor_id=OWNER, bot_id=bot_id, enabled=False), timeout=5)
    assert record_rotation(4, channel)
    assert tgm_events(channel) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines] == ["key_rotated", "bot_disabled", "bot_added"]
    assert lines[1].startswith("2026-05-04 08:00:00Z  bot_disabled") and f"telegram:{OWNER}" in lines[1]
    assert "version=4" in lines[0] and " - " in lines[0]  # no bot
    assert tgm_events(channel, "--bot", bot_id, "--since", "1d", clock=clock) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()] == ["bot_disabled"]
    assert tgm_events(channel, "--limit", "1") == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.parametrize("argv", [("--since", "soon"), ("--limit", "0"), ("--limit", "1001")])
def test_bad_arguments_are_usage_errors(
    registry: tuple[grpc.Channel, str, ManualClock], argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert tgm_events(registry[0], *argv) == 2
    assert capsys.readouterr().err.startswith("tgm events:")


def test_events_needs_the_registry_address(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("REGISTRY_ADDR", raising=False)
    assert main(["events"]) == 2
    assert "REGISTRY_ADDR" in capsys.readouterr().err


def test_a_rotation_the_trail_cannot_take_is_reported_and_not_fatal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REGISTRY_ADDR", raising=False)
    assert record_rotation(2) is False
    assert "vault's audit log has it" in capsys.readouterr().out
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    with grpc.insecure_channel(closed) as channel:
        assert record_rotation(2, channel) is False
    assert "not added to the event trail" in capsys.readouterr().err
