from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from tgm.domain.ports import SecretKind
from tgm.grpc_runtime import channels
from tgm.services.vault.crypto import Cipher
from tgm.services.vault.keystore import KeyStore, KeyStoreError, lock_keyring
from tgm.services.vault.settings import VaultConfigError

REPO = Path(__file__).resolve().parents[3]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_rotation_due_after_ninety_days_and_rotate_resets_it(tmp_path: Path) -> None:
    clock = FakeClock()
    keys = KeyStore.create(tmp_path / "k.json", os.urandom(32), clock=clock)
    clock.now += timedelta(days=89, hours=23)
    assert not keys.status().rotation_due
    clock.now += timedelta(hours=1)
    status = keys.status()
    assert status.rotation_due and status.ages[1] == timedelta(days=90)
    assert keys.rotate() == 2
    status = keys.status()
    assert not status.rotation_due and status.primary_version == 2 and status.ages[2] == timedelta(0)


def test_file_is_private_atomic_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    key = os.urandom(32)
    keys = KeyStore.create(path, key)
    cipher = Cipher(keys)
    old = cipher.seal("bot", SecretKind.BOT_TOKEN, b"secret").ciphertext
    keys.rotate()
    keys.retire(1)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]  # no temp file left behind
    document = json.loads(path.read_text())
    assert document["primary"] == 2 and document["versions"]["1"]["retired"] is True
    reloaded = KeyStore.open(path, key)
    assert reloaded.current().versions == (2,)
    with pytest.raises(Exception, match="key version 1"):
        Cipher(reloaded).open("bot", SecretKind.BOT_TOKEN, old)
    assert "base64" not in repr(reloaded) and key.hex() not in repr(reloaded)


def test_group_readable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    KeyStore.create(path, os.urandom(32))
    path.chmod(0o640)
    with pytest.raises(VaultConfigError, match="chmod 600"):
        KeyStore.open(path, None)


def test_environment_key_must_match_the_file(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    KeyStore.create(path, os.urandom(32))
    with pytest.raises(VaultConfigError, match="does not match"):
        KeyStore.open(path, os.urandom(32))


def test_retire_refuses_the_primary(tmp_path: Path) -> None:
    keys = KeyStore.create(tmp_path / "k.json", os.urandom(32))
    with pytest.raises(KeyStoreError, match="primary"):
        keys.retire(1)


def test_rotation_while_sealing_and_opening_never_fails(tmp_path: Path) -> None:
    keys = KeyStore.create(tmp_path / "k.json", os.urandom(32))
    cipher = Cipher(keys)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        while not stop.is_set():
            try:
                sealed = cipher.seal("bot", SecretKind.BOT_TOKEN, b"x")
                assert cipher.open("bot", SecretKind.BOT_TOKEN, sealed.ciphertext) == b"x"
            except BaseException as exc:
                errors.append(exc)

    with futures.ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(churn)
        for _ in range(20):
            keys.rotate()
        stop.set()
    assert errors == []
    assert keys.current().primary_version == 21


def test_open_channel_puts_a_default_deadline_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(request: bytes, context: grpc.ServicerContext) -> bytes:
        release.wait(10)
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(2))
    handler = grpc.method_handlers_generic_handler("t.Hang", {"Hang": grpc.unary_unary_rpc_method_handler(hang)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setattr(channels, "DEFAULT_DEADLINE_SECONDS", 0.3)
    try:
        with channels.open_channel(f"127.0.0.1:{port}", tls=None) as channel, pytest.raises(grpc.RpcError) as info:
            channel.unary_unary("/t.Hang/Hang")(b"")  # no timeout given by the caller
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        release.set()
        server.stop(0)


def test_a_second_vault_on_the_same_keyring_refuses_to_start(tmp_path: Path) -> None:
    keyring = tmp_path / "vault" / "keyring.json"
    held = lock_keyring(keyring)
    try:
        assert (keyring.parent.stat().st_mode & 0o777) == 0o700
        with pytest.raises(VaultConfigError, match="another vault process"):
            lock_keyring(keyring)  # flock: a second open file description conflicts even in one process
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TLS_", "VAULT_", "ENCRYPTION_KEY"))}
        env.update(
            ENCRYPTION_KEY="base64:" + base64.b64encode(os.urandom(32)).decode(),
            VAULT_KEYRING_FILE=str(keyring),
            VAULT_AUDIT_FILE=str(tmp_path / "audit.log"),
        )
        result = subprocess.run(
            [sys.executable, "-m", "tgm.services.vault", "serve"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "another vault process is already using VAULT_KEYRING_FILE" in result.stderr
        assert not keyring.exists()  # it stopped before touching the keyring
    finally:
        os.close(held)
    lock_keyring(keyring)  # released: the next vault may start


def test_a_failed_keyring_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = KeyStore.create(tmp_path / "keyring.json", os.urandom(32))
    before = sorted(p.name for p in tmp_path.iterdir())

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        keys.rotate()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert keys.current().primary_version == 1  # memory is only swapped after the file is durable


def test_an_existing_open_data_folder_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "vault-data"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # as a volume mount or an operator's mkdir leaves it (issue 11, item 10)
    KeyStore.create(folder / "k.json", os.urandom(32))
    assert folder.stat().st_mode & 0o777 == 0o700


def test_a_missing_keyring_is_never_rebuilt_from_the_environment(tmp_path: Path) -> None:
    """Issue 11, blocker 3: a keyring whose key 1 was retired, then lost, must not come back as a fresh v1 primary."""
    path = tmp_path / "k.json"
    env_key = os.urandom(32)
    with pytest.raises(VaultConfigError, match=r"services\.vault init"):
        KeyStore.open(path, env_key)
    assert not path.exists()
    store = KeyStore.create(path, env_key)
    store.rotate()
    store.retire(1)
    with pytest.raises(KeyStoreError, match="already exists"):
        KeyStore.create(path, env_key)  # init never overwrites
    path.unlink()  # the file is lost
    with pytest.raises(VaultConfigError, match="never rebuilds"):
        KeyStore.open(path, env_key)


def test_create_without_a_bootstrap_key_makes_a_fresh_one(tmp_path: Path) -> None:
    store = KeyStore.create(tmp_path / "k.json", None)
    assert store.current().versions == (1,) and KeyStore.open(tmp_path / "k.json", None).current().versions == (1,)


def _vault_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TLS_", "VAULT_", "ENCRYPTION_KEY"))}
    env.update(VAULT_AUDIT_FILE=str(tmp_path / "audit.log"), **extra)
    return env


def test_init_creates_the_keyring_once_and_serve_refuses_without_it(tmp_path: Path) -> None:
    keyring = tmp_path / "vault" / "keyring.json"
    key = "base64:" + base64.b64encode(os.urandom(32)).decode()
    env = _vault_env(tmp_path, ENCRYPTION_KEY=key, VAULT_KEYRING_FILE=str(keyring))
    serve = subprocess.run(
        [sys.executable, "-m", "tgm.services.vault", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2 and "tgm.services.vault init" in serve.stderr and not keyring.exists()
    first = subprocess.run(
        [sys.executable, "-m", "tgm.services.vault", "init"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    assert keyring.exists() and keyring.stat().st_mode & 0o777 == 0o600
    assert json.loads(keyring.read_text())["versions"]["1"]["key"] == key
    again = subprocess.run(
        [sys.executable, "-m", "tgm.services.vault", "init"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    assert key[7:] not in again.stderr + first.stdout + first.stderr  # the key never printed


def test_init_once_keeps_an_existing_keyring_and_refuses_to_replace_a_lost_one(tmp_path: Path) -> None:
    """A deployment runs `init --once` before every start: the first creates, the next ones change nothing; a
    keyring gone from a folder whose audit log shows a vault ran there is never silently made anew."""
    keyring = tmp_path / "vault" / "keyring.json"
    env = _vault_env(tmp_path, VAULT_KEYRING_FILE=str(keyring))
    once = [sys.executable, "-m", "tgm.services.vault", "init", "--once"]
    first = subprocess.run(once, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and keyring.exists(), first.stderr
    created = keyring.read_bytes()
    again = subprocess.run(once, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stderr
    assert keyring.read_bytes() == created
    keyring.unlink()  # lost, while the audit log of the vault that used it stays
    for command in (once, once[:-1]):
        lost = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert lost.returncode == 2 and "restore its keyring from backup" in lost.stderr, command
        assert not keyring.exists(), command


def test_destroy_removes_a_retired_versions_bytes_for_good(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    key1 = os.urandom(32)
    store = KeyStore.create(path, key1)
    old = Cipher(store).seal("bot", SecretKind.BOT_TOKEN, b"secret").ciphertext
    with pytest.raises(KeyStoreError, match="not retired"):
        store.destroy(1)
    store.rotate()
    store.retire(1)
    store.destroy(1)
    assert base64.b64encode(key1).decode() not in path.read_text()
    document = json.loads(path.read_text())
    assert document["versions"]["1"] == {
        "created_at": document["versions"]["1"]["created_at"],
        "retired": True,
        "destroyed": True,
    }
    reloaded = KeyStore.open(path, None)
    assert reloaded.current().versions == (2,)
    with pytest.raises(Exception, match="key version 1"):
        Cipher(reloaded).open("bot", SecretKind.BOT_TOKEN, old)
    with pytest.raises(VaultConfigError, match="does not match"):
        KeyStore.open(path, key1)  # the old ENCRYPTION_KEY cannot bring it back
    assert reloaded.rotate() == 3  # version numbers are never reused


def test_the_destroy_verb_refuses_while_a_vault_holds_the_keyring_and_audits_when_done(tmp_path: Path) -> None:
    keyring = tmp_path / "vault" / "keyring.json"
    env = _vault_env(tmp_path, VAULT_KEYRING_FILE=str(keyring))
    init = [sys.executable, "-m", "tgm.services.vault", "init"]
    assert subprocess.run(init, cwd=REPO, env=env, capture_output=True, timeout=60).returncode == 0
    store = KeyStore.open(keyring, None)
    store.rotate()
    store.retire(1)
    command = [sys.executable, "-m", "tgm.services.vault", "destroy", "1"]
    held = lock_keyring(keyring)  # a running vault
    try:
        busy = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    finally:
        os.close(held)
    assert busy.returncode == 2 and "another vault process" in busy.stderr
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(keyring.read_text())["versions"]["1"].get("destroyed") is True
    audit_line = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
    assert audit_line["verb"] == "DestroyKeyVersion" and audit_line["key_version"] == 1
