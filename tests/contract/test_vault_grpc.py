"""The vault as a real process: `python -m services.vault serve`, spoken to over gRPC."""

from __future__ import annotations

import base64
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


def _start(tmp_path: Path, encryption_key: str, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("ENCRYPTION_KEY", "VAULT_KEYS", "VAULT_PRIMARY_KEY_VERSION")
    }
    env.update(ENCRYPTION_KEY=encryption_key, VAULT_LISTEN=f"127.0.0.1:{port}", LOG_LEVEL="DEBUG")
    stderr_path = tmp_path / f"vault-{port}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.vault", "serve"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return process, stderr_path


def _wait_serving(process: subprocess.Popen[bytes], stderr_path: Path, target: str) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    with grpc.insecure_channel(target) as channel:
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
def vault(tmp_path: Path) -> Iterator[VaultProcess]:
    key = os.urandom(32)
    key_b64 = base64.b64encode(key).decode()
    port = _free_port()
    process, stderr_path = _start(tmp_path, "base64:" + key_b64, port)
    running = VaultProcess(process, stderr_path, f"127.0.0.1:{port}", key_b64, key)
    try:
        _wait_serving(process, stderr_path, running.target)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def stub(vault: VaultProcess) -> Iterator[vault_pb2_grpc.VaultServiceStub]:
    with grpc.insecure_channel(vault.target) as channel:
        yield vault_pb2_grpc.VaultServiceStub(channel)


def test_encrypt_decrypt_and_logs_hold_no_secrets(vault: VaultProcess, stub: vault_pb2_grpc.VaultServiceStub) -> None:
    # Not token-shaped on purpose: the log redactor would mask a token, hiding a leak from this test.
    plaintext = f"correct horse battery staple {uuid.uuid4().hex}"
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    secrets_sent = []
    for text, kind in ((plaintext, vault_pb2.SECRET_KIND_INBOUND_TEXT), (token, vault_pb2.SECRET_KIND_BOT_TOKEN)):
        sealed = stub.Encrypt(vault_pb2.EncryptRequest(bot_ref="bot-42", kind=kind, plaintext=text.encode()), timeout=5)
        assert sealed.key_version == 1
        assert text.encode() not in sealed.ciphertext
        opened = stub.Decrypt(
            vault_pb2.DecryptRequest(
                bot_ref="bot-42", kind=kind, purpose=vault_pb2.PURPOSE_SEND, ciphertext=sealed.ciphertext
            ),
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
            purpose=vault_pb2.PURPOSE_SEND,
            ciphertext=b"\x01\x00\x00\x00\x01" + b"garbage-garbage-garbage-garbage",
        ),
    ],
    ids=["empty-bot-ref", "kind-unspecified", "plaintext-too-long", "purpose-unspecified", "garbage-ciphertext"],
)
def test_invalid_arguments(
    stub: vault_pb2_grpc.VaultServiceStub, request_: vault_pb2.EncryptRequest | vault_pb2.DecryptRequest
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        if isinstance(request_, vault_pb2.EncryptRequest):
            stub.Encrypt(request_, timeout=5)
        else:
            stub.Decrypt(request_, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "garbage" not in (info.value.details() or "")


@pytest.mark.parametrize(
    "bad_key", [base64.b64encode(b"sixteen-byte-key").decode(), "this is not base64!", "base64:" + "A" * 7]
)
def test_bad_encryption_key_fails_startup_naming_the_variable(tmp_path: Path, bad_key: str) -> None:
    process, stderr_path = _start(tmp_path, bad_key, _free_port())
    assert process.wait(timeout=30) == 2
    stderr = stderr_path.read_text()
    assert "ENCRYPTION_KEY" in stderr
    assert bad_key not in stderr
    assert bad_key.removeprefix("base64:") not in stderr
