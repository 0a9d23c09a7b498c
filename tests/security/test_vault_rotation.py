"""Rotation under load: Decrypt keeps working while RotateKey and `botregistry rewrap` run; then retire."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from tests.security.conftest import Vault
from tgm.domain.errors import VaultUnavailable
from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.grpc_runtime.tls import tls_env
from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.sql import BotRow, make_engine, make_session_factory
from tgm.services.vault.crypto import Cipher
from tgm.services.vault.keystore import KeyStore
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc
from tgm.vault_client import GrpcTokenVault

REPO = Path(__file__).resolve().parents[2]
BOTS = 40


def _token(index: int) -> str:
    return f"{100000 + index}:AAH{uuid.uuid4().hex}"


def test_rotation_under_load_then_retire(vault: Vault, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(db_url)
    sessions = make_session_factory(make_engine(db_url))
    registry = GrpcTokenVault(vault.channel("botregistry"))
    dispatcher = GrpcTokenVault(vault.channel("dispatcher"))
    operator = vault_pb2_grpc.VaultServiceStub(vault.channel("operator"))

    tokens: dict[str, str] = {}
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for index in range(BOTS):
            bot_id, token = str(uuid.uuid4()), _token(index)
            tokens[bot_id] = token
            session.add(
                BotRow(
                    id=bot_id, public_id=f"p{index}", owner_id=1, telegram_bot_id=100000 + index,
                    username=f"bot{index}", status="active",
                    sealed_token=registry.encrypt(bot_id, SecretKind.BOT_TOKEN, token),
                    webhook_secret_sha256=b"\0" * 32, welcome_text="", language="en", is_manager=False,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
    with sessions() as session:
        old_ciphertexts = {row.id: bytes(row.sealed_token) for row in session.scalars(select(BotRow))}
    assert {Cipher.key_version_of(c) for c in old_ciphertexts.values()} == {1}

    # The load: like a dispatcher, read the current row and open its token, over and over.
    stop = threading.Event()
    calls: list[int] = []
    failures: list[str] = []

    def load() -> None:
        done = 0
        while not stop.is_set():
            with sessions() as session:
                rows = [(row.id, bytes(row.sealed_token)) for row in session.scalars(select(BotRow))]
            for bot_id, sealed in rows:
                try:
                    if dispatcher.decrypt(bot_id, SecretKind.BOT_TOKEN, DecryptPurpose.SEND, sealed) != tokens[bot_id]:
                        failures.append(f"{bot_id}: wrong plaintext")
                except VaultUnavailable as exc:
                    failures.append(f"{bot_id}: {exc}")
                done += 1
        calls.append(done)

    def wait_for_calls(minimum: int) -> None:
        deadline = time.monotonic() + 30
        while vault.audit_file.read_text().count('"decrypt"') < minimum:
            assert time.monotonic() < deadline, "the load loop made no progress"
            time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for_calls(BOTS)
        assert operator.RotateKey(vault_pb2.RotateKeyRequest()).primary_version == 2
        env = {k: v for k, v in os.environ.items() if not k.startswith("TLS_")}
        env.update(tls_env(vault.certs["botregistry"]), DB_URL=db_url, VAULT_ADDR=vault.target, LOG_LEVEL="INFO")
        result = subprocess.run(
            [sys.executable, "-m", "tgm.services.botregistry", "rewrap"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report == {
            "total": BOTS, "rewrapped": BOTS, "unchanged": 0, "failed": 0, "conflicts": 0, "empty": 0,
            "passes": 1, "stale": 0, "primary": 2,
        }  # fmt: skip
        decrypts_after_rewrap = vault.audit_file.read_text().count('"decrypt"')
        wait_for_calls(decrypts_after_rewrap + 2 * BOTS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert sum(calls) >= 3 * BOTS

    with sessions() as session:
        rows = {row.id: bytes(row.sealed_token) for row in session.scalars(select(BotRow))}
    assert {Cipher.key_version_of(c) for c in rows.values()} == {2}

    # A second run finds nothing to do.
    rerun = subprocess.run(
        [sys.executable, "-m", "tgm.services.botregistry", "rewrap"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["unchanged"] == BOTS

    operator.RetireKeyVersion(vault_pb2.RetireKeyVersionRequest(version=1))
    status = operator.KeyStatus(vault_pb2.KeyStatusRequest())
    assert [(v.version, v.primary, v.retired) for v in status.versions] == [(1, False, True), (2, True, False)]
    for bot_id, sealed in rows.items():
        assert dispatcher.decrypt(bot_id, SecretKind.BOT_TOKEN, DecryptPurpose.SEND, sealed) == tokens[bot_id]
    # ...and only the new version opens: the old ciphertexts are dead.
    for bot_id, sealed in list(old_ciphertexts.items())[:3]:
        with pytest.raises(VaultUnavailable, match="INVALID_ARGUMENT"):
            dispatcher.decrypt(bot_id, SecretKind.BOT_TOKEN, DecryptPurpose.SEND, sealed)

    # The keyring file carries all of it across a restart.
    reloaded = KeyStore.open(vault.keyring_file, None)
    assert reloaded.current().versions == (2,) and reloaded.current().primary_version == 2


def test_the_primary_cannot_be_retired_and_unknown_versions_are_refused(vault: Vault) -> None:
    operator = vault_pb2_grpc.VaultServiceStub(vault.channel("operator"))
    for version in (1, 7):
        with pytest.raises(grpc.RpcError) as info:
            operator.RetireKeyVersion(vault_pb2.RetireKeyVersionRequest(version=version))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert vault.keys.current().versions == (1,)


def test_tgm_keys_reports_rotates_and_retires_with_the_operators_certificate(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tgm.apps.cli.__main__ import main

    def tgm_keys(identity: str, *words: str) -> tuple[int, str, str]:
        for name, value in tls_env(vault.certs[identity]).items():
            monkeypatch.setenv(name, value)
        code = main(["keys", *words, "--addr", vault.target])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = tgm_keys("operator", "status")
    assert (code, err) == (0, "")
    assert re.fullmatch(r"version 1: age 0d \(\d+s\) primary\nrotation_due=false\n", out)
    monkeypatch.delenv("REGISTRY_ADDR", raising=False)  # no registry here: the rotation is in the vault's audit log
    assert tgm_keys("operator", "rotate") == (
        0,
        "primary key version is now 2\n"
        "key rotation not added to the event trail (set REGISTRY_ADDR); the vault's audit log has it\n",
        "",
    )
    assert tgm_keys("operator", "retire", "1") == (0, "key version 1 retired\n", "")
    code, out, _ = tgm_keys("operator", "status")
    assert code == 0
    assert re.fullmatch(
        r"version 1: age 0d \(\d+s\) retired\nversion 2: age 0d \(\d+s\) primary\nrotation_due=false\n", out
    )
    assert vault.keys.current().versions == (2,)
    code, _, err = tgm_keys("operator", "retire")
    assert code == 2 and "needs a version" in err
    code, _, err = tgm_keys("dispatcher", "rotate")  # authenticated, but not granted RotateKey
    assert code == 1 and "PERMISSION_DENIED" in err
    assert vault.keys.current().primary_version == 2
