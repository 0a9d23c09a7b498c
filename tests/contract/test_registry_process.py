"""`python -m services.botregistry serve` as a real process: migrates, serves health and RPCs, logs JSON
without tokens, and stops cleanly on SIGTERM. Telegram and the vault point at closed ports on purpose."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from libs.grpc_runtime.channels import wait_until_serving
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmnop"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DB_URL", "REGISTRY_LISTEN")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def test_migrate_command_creates_the_default_sqlite_db_from_any_cwd(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.botregistry", "migrate"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".run" / "registry.db").is_file()


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    target = f"127.0.0.1:{port}"
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.botregistry", "serve"],
            cwd=tmp_path,
            env=_env(
                REGISTRY_LISTEN=target,
                TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{_free_port()}",
                VAULT_ADDR=f"127.0.0.1:{_free_port()}",
                LOG_LEVEL="DEBUG",
            ),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        assert wait_until_serving(target, timeout_seconds=30), stderr_path.read_text()
        with grpc.insecure_channel(target) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            assert list(stub.ListBots(registry_pb2.ListBotsRequest(owner_id=1), timeout=5).bots) == []
            with pytest.raises(grpc.RpcError) as bad:
                stub.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=1, token="nope"), timeout=5)
            assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as down:
                stub.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=1, token=TOKEN), timeout=30)
            assert down.value.code() is grpc.StatusCode.UNAVAILABLE
            assert TOKEN.split(":")[1] not in down.value.details()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    log = stderr_path.read_text()
    assert TOKEN.split(":")[1] not in log
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines, "no log lines"
    for line in lines:
        record = json.loads(line)
        assert record["service"] == "botregistry"
    assert any(json.loads(line)["message"] == "botregistry stopped" for line in lines)
