"""`tgm bots` / `tgm users` against an in-process registry: the operator acts on any bot as its owner."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dependency_injector import providers

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN, FakeTelegram
from tgm.apps.cli import bots as cli
from tgm.grpc_runtime.channels import build_server
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.services.botregistry import migrate
from tgm.services.botregistry.container import Container
from tgm.services.botregistry.manager_bot_identity import register_manager
from tgm.services.botregistry.settings import RegistrySettings

OWNER = 3003
MANAGER_TOKEN = "555555555:AAManagerFakeTokenForTests_abcdefghij"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[grpc.Channel, str]]:
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(db_url)
    container = Container()
    container.settings.override(RegistrySettings(db_url=db_url, webhook_base_url="https://hooks.test"))
    known = {123456789: "first_bot", 987654321: "second_bot", 555555555: "mgr_bot"}
    container.telegram.override(providers.Object(FakeTelegram(known=known)))
    container.vault.override(providers.Object(InMemoryTokenVault()))
    assert register_manager(container.register_bot(), MANAGER_TOKEN)  # invites link to it
    server, _health = build_server(max_workers=4)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(container.servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    bot = stub.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=OWNER, token=TOKEN), timeout=5).bot
    try:
        yield channel, bot.bot_id
    finally:
        channel.close()
        server.stop(0)
        container.engine().dispose()


def tgm(channel: grpc.Channel, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tgm")
    cli.add_parsers(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(list(argv))
    return cli.run(args.verb, args, channel)


def stored(channel: grpc.Channel, bot_id: str) -> registry_pb2.Bot:
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    return stub.GetBot(registry_pb2.GetBotRequest(bot_id=bot_id), timeout=5).bot


def test_show_and_list_print_the_bot_without_its_sealed_token(
    registry: tuple[grpc.Channel, str], capsys: pytest.CaptureFixture[str]
) -> None:
    channel, bot_id = registry
    assert tgm(channel, "bots", "show", bot_id) == 0
    shown = capsys.readouterr().out
    assert f"bot_id       {bot_id}" in shown and "status       active" in shown and "maintenance  off" in shown
    assert "inbox        off" in shown
    assert "sealed" not in shown and TOKEN not in shown
    assert tgm(channel, "bots", "list", "--owner", str(OWNER)) == 0
    assert bot_id in capsys.readouterr().out


def test_maintenance_blocks_and_status_change_any_bot_and_are_logged(
    registry: tuple[grpc.Channel, str], caplog: pytest.LogCaptureFixture
) -> None:
    channel, bot_id = registry
    with caplog.at_level(logging.INFO, logger="tgm.apps.cli.bots.operator"):
        assert tgm(channel, "bots", "maintenance", bot_id, "Back", "at", "6") == 0
        assert stored(channel, bot_id).maintenance_text == "Back at 6"
        assert tgm(channel, "users", "block", bot_id, "42", "--for", "2h") == 0
        assert set(stored(channel, bot_id).blocked_users) == {42}
        assert tgm(channel, "users", "unblock", bot_id, "42") == 0
        assert dict(stored(channel, bot_id).blocked_users) == {}
        assert tgm(channel, "bots", "maintenance", bot_id, "--off") == 0
        assert tgm(channel, "bots", "disable", bot_id) == 0
        assert stored(channel, bot_id).status == registry_pb2.BOT_STATUS_DISABLED
        assert tgm(channel, "bots", "enable", bot_id) == 0
        assert tgm(channel, "bots", "captcha", bot_id, "on") == 0
        assert stored(channel, bot_id).captcha_mode == "on"
    final = stored(channel, bot_id)
    assert final.status == registry_pb2.BOT_STATUS_ACTIVE and final.maintenance_text == ""
    actions = [record.__dict__["command"] for record in caplog.records if record.getMessage() == "operator action"]
    expected = [
        "bots maintenance",
        "users block",
        "users unblock",
        "bots maintenance",
        "bots disable",
        "bots enable",
        "bots captcha",
    ]
    assert actions == expected


@pytest.mark.parametrize(
    "argv",
    [
        ("bots", "maintenance", "{bot}"),  # neither text nor --off
        ("bots", "maintenance", "{bot}", "text", "--off"),  # both
        ("users", "block", "{bot}", "42", "--for", "10s"),
        ("bots", "captcha", "{bot}", "sometimes"),
        ("limits", "set", "{bot}", "/start"),  # neither --rate nor --cooldown
        ("limits", "set", "{bot}", "/start", "--rate", "5"),
        ("limits", "set", "{bot}", "/start", "--rate", "x/1m"),
        ("limits", "set", "{bot}", "/start", "--cooldown", "soon"),
        ("limits", "set", "{bot}", "/start", "--rate", "5/1m", "--cooldown", "soon"),  # nothing half-applied
    ],
)
def test_bad_arguments_change_nothing(
    registry: tuple[grpc.Channel, str], argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    channel, bot_id = registry
    before = stored(channel, bot_id)
    assert tgm(channel, *(part.format(bot=bot_id) for part in argv)) == 2
    assert capsys.readouterr().err
    assert stored(channel, bot_id) == before


def test_the_registry_refusing_is_reported_with_its_reason(
    registry: tuple[grpc.Channel, str], capsys: pytest.CaptureFixture[str]
) -> None:
    channel, bot_id = registry
    assert tgm(channel, "bots", "show", "no-such-bot") == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert tgm(channel, "users", "unblock", bot_id, "42") == 1  # not blocked
    assert "INVALID_ARGUMENT" in capsys.readouterr().err


def test_limits_set_show_and_reset_any_bot(
    registry: tuple[grpc.Channel, str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    channel, bot_id = registry
    with caplog.at_level(logging.INFO, logger="tgm.apps.cli.bots.operator"):
        assert tgm(channel, "limits", "set", bot_id, "/start", "--rate", "5/1m", "--cooldown", "10s") == 0
        bot = stored(channel, bot_id)
        assert (bot.rate_limits["cmd:/start"].limit, bot.rate_limits["cmd:/start"].window_seconds) == (5, 60.0)
        assert dict(bot.cooldowns) == {"cmd:/start": 10.0}
        capsys.readouterr()
        assert tgm(channel, "limits", "show", bot_id) == 0
        assert "limit        cmd:/start: 5 per 1m, cooldown 10s" in capsys.readouterr().out
        assert tgm(channel, "limits", "set", bot_id, "/start", "--rate", "off") == 0
        assert dict(stored(channel, bot_id).rate_limits) == {}
        assert tgm(channel, "limits", "reset", bot_id) == 0
        assert dict(stored(channel, bot_id).cooldowns) == {}
    actions = [record.__dict__["command"] for record in caplog.records if record.getMessage() == "operator action"]
    assert actions == ["limits set", "limits set", "limits reset"]
    assert tgm(channel, "limits", "set", bot_id, "anything", "--rate", "5/1m") == 1
    assert "INVALID_ARGUMENT" in capsys.readouterr().err


def test_list_shows_the_users_role_on_each_bot(
    registry: tuple[grpc.Channel, str], capsys: pytest.CaptureFixture[str]
) -> None:
    channel, bot_id = registry
    stub = registry_pb2_grpc.RegistryServiceStub(channel)
    other = stub.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=OWNER + 1, token=OTHER_BOT_TOKEN), timeout=5).bot
    code = stub.CreateInvite(registry_pb2.CreateInviteRequest(actor_id=OWNER + 1, bot_id=other.bot_id), timeout=5).code
    stub.RedeemInvite(registry_pb2.RedeemInviteRequest(actor_id=OWNER, code=code), timeout=5)
    capsys.readouterr()
    assert tgm(channel, "bots", "list", "--owner", str(OWNER)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(bot_id) and lines[0].endswith("  owner")
    assert lines[1].startswith(other.bot_id) and lines[1].endswith(f"  admin (owner {OWNER + 1})")
