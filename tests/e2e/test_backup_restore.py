"""Issue 9: a backup of a running stack on PostgreSQL, restored into a fresh database and a fresh run folder, gives
a stack whose bots still answer (their sealed tokens open under the restored keyring); a tampered archive, a wrong
BACKUP_KEY and an occupied target are refused with nothing written."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from testbed.postgres import PostgresServer
from tests.support.secrets_scan import database_row_count
from tgm.apps.cli import backup as cli
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.stack import Stack, StackConfig, wait_for

pytestmark = pytest.mark.e2e

BACKUP_KEY = "a backup key that is not the vault's, 32+ characters"


def _vault_env(stack: Stack, db_url: str) -> dict[str, str]:
    """The environment `tgm backup` / `tgm restore` read: the services' own variables (anchor by its default)."""
    return {
        "DB_URL": db_url,
        "VAULT_KEYRING_FILE": str(stack.vault_keyring_file),
        "VAULT_AUDIT_FILE": str(stack.vault_audit_file),
        "BACKUP_KEY": BACKUP_KEY,
    }


def _bots(db_url: str) -> set[str]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            return {str(name) for name in connection.execute(sa.text("SELECT username FROM bots")).scalars()}
    finally:
        engine.dispose()


def _answers_start(emulator: EmulatorControl, bot_id: int, user_id: int) -> None:
    user = {"id": user_id, "first_name": "Bia", "language_code": "en"}
    emulator.send_text(bot_id, user, "/start")
    wait_for(lambda: emulator.bot_messages(bot_id, user_id), 60, f"bot {bot_id}'s answer to /start")


@pytest.fixture
def first_stack(tmp_path: Path, fresh_postgres_url: str) -> Iterator[Stack]:
    stack = Stack(StackConfig(run_dir=tmp_path / "first", db_url=fresh_postgres_url)).start()
    try:
        yield stack
    finally:
        stack.stop()


def test_restored_stack_answers_with_every_bot(
    first_stack: Stack, postgres_server: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = EmulatorControl(first_stack.emulator_url)
    channel = first_stack.channel(first_stack.registry_addr)
    registry = registry_pb2_grpc.RegistryServiceStub(channel)
    bots = [emulator.create_bot(f"kept_{n}_bot") for n in (1, 2)]
    for bot in bots:
        registry.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=9101, token=bot["token"]), timeout=20)
        _answers_start(emulator, bot["id"], 610001)
    channel.close()

    archive = tmp_path / "tgm.backup"
    source_env = _vault_env(first_stack, first_stack.db_url)
    assert cli.main("backup", argparse.Namespace(out=archive), source_env) == 0  # the vault is running
    # Everything but the emulator stops: it keeps the bots and their webhooks, as Telegram would.
    for name in ("embedded", "botregistry", "vault"):
        first_stack.stop_process(name)
    rows_before = database_row_count(first_stack.db_url)

    fresh_db = postgres_server.fresh_database("tgm_backup_restored")
    config = StackConfig(
        run_dir=tmp_path / "restored",
        db_url=fresh_db,
        encryption_key="",  # the keys come from the restored keyring alone
        telegram_api_base_url=first_stack.emulator_url,
        gateway_port=first_stack.gateway_port,  # the bots' webhooks point here, as a public address would
    )
    target = Stack(config)  # makes its certificates; the vault's files are not there yet
    target_env = _vault_env(target, fresh_db)

    def nothing_written() -> bool:
        vault_files = (
            target.vault_keyring_file,
            target.vault_audit_file,
            target.vault_keyring_file.parent / "audit.anchor",
        )
        return database_row_count(fresh_db) == 0 and not any(path.exists() for path in vault_files)

    tampered = tmp_path / "tampered.backup"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    assert cli.main("restore", argparse.Namespace(file=tampered), target_env) == 2
    assert "changed or cut" in capsys.readouterr().err
    assert nothing_written()

    wrong_key = {**target_env, "BACKUP_KEY": BACKUP_KEY.upper()}
    assert cli.main("restore", argparse.Namespace(file=archive), wrong_key) == 2
    assert "wrong BACKUP_KEY" in capsys.readouterr().err
    assert nothing_written()

    occupied_db = {**target_env, "DB_URL": first_stack.db_url}
    assert cli.main("restore", argparse.Namespace(file=archive), occupied_db) == 2
    assert "empty database" in capsys.readouterr().err
    assert nothing_written()
    assert database_row_count(first_stack.db_url) == rows_before

    assert cli.main("restore", argparse.Namespace(file=archive), target_env) == 0
    assert _bots(fresh_db) == _bots(first_stack.db_url) >= {"kept_1_bot", "kept_2_bot"}
    target.start()
    try:
        for bot in bots:
            _answers_start(emulator, bot["id"], 610002)  # a new user: answered by the restored stack
        assert cli.main("restore", argparse.Namespace(file=archive), target_env) == 2  # now occupied
    finally:
        target.stop()
        emulator.close()
