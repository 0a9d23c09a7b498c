"""The vault as a real process: `python -m tgm.services.vault init`, then `serve`, spoken to over gRPC."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tgm.grpc_runtime.channels import open_channel
from tgm.grpc_runtime.tls import TlsFiles, tls_env
from tgm.tools.devstack.certs import ensure_certs
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_SECONDS = 15.0


@dataclass
class VaultProcess:
    process: subprocess.Popen[bytes]
    stderr_path: Path
    target: str
    key_b64: str
    key: bytes

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)
        return self.stderr_path.read_text()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    return ensure_certs(tmp_path_factory.mktemp("certs"))


def _env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """The vault's environment: none of the caller's vault or TLS variables, its files in `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCRYPTION_KEY", "VAULT_", "TLS_"))}
    env.update(VAULT_AUDIT_FILE=str(tmp_path / "audit.log"), LOG_LEVEL="DEBUG")
    return {**env, **variables}


def _init(tmp_path: Path, encryption_key: str) -> Path:
    """`init`: the keyring, once, from ENCRYPTION_KEY (its only reader); the vault serves from the file alone."""
    keyring = tmp_path / "vault" / "keyring.json"
    env = _env(tmp_path, ENCRYPTION_KEY=encryption_key, VAULT_KEYRING_FILE=str(keyring))
    command = [sys.executable, "-m", "tgm.services.vault", "init"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return keyring


def _start(tmp_path: Path, port: int, tls: TlsFiles | None, **variables: str) -> tuple[subprocess.Popen[bytes], Path]:
    env = _env(tmp_path, VAULT_LISTEN=f"127.0.0.1:{port}", **variables, **(tls_env(tls) if tls else {}))
    stderr_path = tmp_path / f"vault-{port}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tgm.services.vault", "serve"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return process, stderr_path


def _wait_serving(process: subprocess.Popen[bytes], stderr_path: Path, target: str, tls: TlsFiles) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    with open_channel(target, tls=tls, server_name="vault") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"vault exited with {process.returncode}: {stderr_path.read_text()}")
            try:
                # wait_for_ready blocks until the channel connects (or the short timeout passes): no fixed sleeps.
                reply = health.Check(
                    health_pb2.HealthCheckRequest(service="tgm.vault.v1.VaultService"), timeout=0.5, wait_for_ready=True
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                continue
    process.kill()
    pytest.fail(f"vault did not report SERVING within {STARTUP_DEADLINE_SECONDS}s: {stderr_path.read_text()}")


@pytest.fixture
def vault(tmp_path: Path, certs: dict[str, TlsFiles]) -> Iterator[VaultProcess]:
    key = os.urandom(32)
    key_b64 = base64.b64encode(key).decode()
    port = _free_port()
    keyring = _init(tmp_path, "base64:" + key_b64)
    process, stderr_path = _start(tmp_path, port, certs["vault"], VAULT_KEYRING_FILE=str(keyring))
    running = VaultProcess(process, stderr_path, f"127.0.0.1:{port}", key_b64, key)
    try:
        _wait_serving(process, stderr_path, running.target, certs["operator"])
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def stub(vault: VaultProcess, certs: dict[str, TlsFiles]) -> Iterator[vault_pb2_grpc.VaultServiceStub]:
    # `embedded` (gateway + dispatcher in one process) may Encrypt and Decrypt(send).
    with open_channel(vault.target, tls=certs["embedded"], server_name="vault") as channel:
        yield vault_pb2_grpc.VaultServiceStub(channel)


@pytest.fixture
def registry_stub(vault: VaultProcess, certs: dict[str, TlsFiles]) -> Iterator[vault_pb2_grpc.VaultServiceStub]:
    # `botregistry` may Encrypt(bot_token) and Decrypt(manage, bot_token | inbound_text).
    with open_channel(vault.target, tls=certs["botregistry"], server_name="vault") as channel:
        yield vault_pb2_grpc.VaultServiceStub(channel)


def test_encrypt_decrypt_and_logs_hold_no_secrets(
    vault: VaultProcess, stub: vault_pb2_grpc.VaultServiceStub, registry_stub: vault_pb2_grpc.VaultServiceStub
) -> None:
    # Not token-shaped on purpose: the log redactor would mask a token, hiding a leak from this test.
    plaintext = f"correct horse battery staple {uuid.uuid4().hex}"
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    secrets_sent = []
    # inbound text: sealed by the gateway side, opened by the registry (manage); a token: the other way round.
    text_kind, bot_kind = vault_pb2.SECRET_KIND_INBOUND_TEXT, vault_pb2.SECRET_KIND_BOT_TOKEN
    for text, kind, sealer, opener, purpose in (
        (plaintext, text_kind, stub, registry_stub, vault_pb2.PURPOSE_MANAGE),
        (token, bot_kind, registry_stub, stub, vault_pb2.PURPOSE_SEND),
    ):
        request = vault_pb2.EncryptRequest(bot_ref="bot-42", kind=kind, plaintext=text.encode())
        sealed = sealer.Encrypt(request, timeout=5)
        assert sealed.key_version == 1
        assert text.encode() not in sealed.ciphertext
        opened = opener.Decrypt(
            vault_pb2.DecryptRequest(bot_ref="bot-42", kind=kind, purpose=purpose, ciphertext=sealed.ciphertext),
            timeout=5,
        )
        assert opened.plaintext == text.encode()
        secrets_sent.append(text)

    with pytest.raises(grpc.RpcError) as info:
        stub.Decrypt(
            vault_pb2.DecryptRequest(
                bot_ref="bot-43",
                kind=vault_pb2.SECRET_KIND_BOT_TOKEN,
                purpose=vault_pb2.PURPOSE_SEND,
                ciphertext=sealed.ciphertext,
            ),
            timeout=5,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    stderr = vault.stop()
    assert vault.process.returncode == 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert any('"vault serving"' in line for line in lines)
    assert any('"vault stopped"' in line for line in lines)
    assert any('"outcome": "ok"' in line and '"verb": "encrypt"' in line for line in lines)
    # The audit anchors leave with the log stream: the startup head, then seq + hash of every appended line.
    assert any('"vault audit log resumed"' in line and '"audit_seq": 1' in line for line in lines)  # init's line
    anchors = [json.loads(line) for line in lines if '"audit_seq"' in line and '"vault call"' in line]
    assert [a["audit_seq"] for a in anchors] == list(range(2, len(anchors) + 2)) and len(anchors) == 5
    assert all(len(a["audit_hash"]) == 64 for a in anchors)
    for secret in (*secrets_sent, token.split(":")[1], vault.key_b64, vault.key.hex(), repr(vault.key)):
        assert secret not in stderr


@pytest.mark.parametrize(
    "request_",
    [
        vault_pb2.EncryptRequest(bot_ref="", kind=vault_pb2.SECRET_KIND_BOT_TOKEN, plaintext=b"x"),
        vault_pb2.EncryptRequest(bot_ref="bot", kind=vault_pb2.SECRET_KIND_UNSPECIFIED, plaintext=b"x"),
        vault_pb2.EncryptRequest(bot_ref="bot", kind=vault_pb2.SECRET_KIND_BOT_TOKEN, plaintext=b"x" * 5000),
        vault_pb2.DecryptRequest(
            bot_ref="bot",
            kind=vault_pb2.SECRET_KIND_BOT_TOKEN,
            purpose=vault_pb2.PURPOSE_UNSPECIFIED,
            ciphertext=b"\x01" * 40,
        ),
        vault_pb2.DecryptRequest(
            bot_ref="bot",
            kind=vault_pb2.SECRET_KIND_BOT_TOKEN,
            purpose=vault_pb2.PURPOSE_MANAGE,
            ciphertext=b"\x01\x00\x00\x00\x01" + b"garbage-garbage-garbage-garbage",
        ),
    ],
    ids=["empty-bot-ref", "kind-unspecified", "plaintext-too-long", "purpose-unspecified", "garbage-ciphertext"],
)
def test_invalid_arguments(
    registry_stub: vault_pb2_grpc.VaultServiceStub, request_: vault_pb2.EncryptRequest | vault_pb2.DecryptRequest
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        if isinstance(request_, vault_pb2.EncryptRequest):
            registry_stub.Encrypt(request_, timeout=5)
        else:
            registry_stub.Decrypt(request_, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "garbage" not in (info.value.details() or "")


@pytest.mark.parametrize(
    "bad_key", [base64.b64encode(b"sixteen-byte-key").decode(), "this is not base64!", "base64:" + "A" * 7]
)
def test_bad_encryption_key_fails_naming_the_variable(tmp_path: Path, bad_key: str, certs: dict[str, TlsFiles]) -> None:
    """`init` (ENCRYPTION_KEY's reader) and `serve` (which checks it against the keyring when it is set) refuse it."""
    keyring = tmp_path / "vault" / "keyring.json"
    variables = {"ENCRYPTION_KEY": bad_key, "VAULT_KEYRING_FILE": str(keyring)}
    init = [sys.executable, "-m", "tgm.services.vault", "init"]
    env = _env(tmp_path, **variables)
    refused = subprocess.run(init, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    process, stderr_path = _start(tmp_path, _free_port(), certs["vault"], **variables)
    assert refused.returncode == 2 and process.wait(timeout=30) == 2 and not keyring.exists()
    for stderr in (refused.stderr, stderr_path.read_text()):
        assert "ENCRYPTION_KEY" in stderr
        assert bad_key not in stderr
        assert bad_key.removeprefix("base64:") not in stderr


@pytest.mark.parametrize("keyring", ["unset", "missing"])
def test_serve_refuses_without_a_keyring_and_says_to_run_init(
    tmp_path: Path, keyring: str, certs: dict[str, TlsFiles]
) -> None:
    """Issue 11, item 3: ENCRYPTION_KEY is `init`'s input only; the vault never serves from it alone."""
    key = os.urandom(32)
    variables = {"ENCRYPTION_KEY": "base64:" + base64.b64encode(key).decode()}
    if keyring == "missing":
        variables["VAULT_KEYRING_FILE"] = str(tmp_path / "vault" / "keyring.json")
    process, stderr_path = _start(tmp_path, _free_port(), certs["vault"], **variables)
    assert process.wait(timeout=30) == 2
    stderr = stderr_path.read_text()
    assert "VAULT_KEYRING_FILE" in stderr and "tgm.services.vault init" in stderr
    for shown in (base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode(), key.hex()):
        assert shown not in stderr
    assert not (tmp_path / "vault" / "keyring.json").exists()
    assert not (tmp_path / "audit.log").exists()


def test_vault_refuses_to_start_without_tls(tmp_path: Path) -> None:
    keyring = _init(tmp_path, "base64:" + base64.b64encode(os.urandom(32)).decode())
    process, stderr_path = _start(tmp_path, _free_port(), None, VAULT_KEYRING_FILE=str(keyring))
    assert process.wait(timeout=30) == 2
    assert "TLS_CA_FILE" in stderr_path.read_text()
