"""`python -m tgm.services.botregistry serve` as a real process: migrates, serves health and RPCs, logs JSON
without tokens, and stops cleanly on SIGTERM. Telegram and the vault point at closed ports on purpose."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from tgm.domain.events import Event, EventFilter, EventKind, Outcome
from tgm.grpc_runtime.channels import wait_until_serving
from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.sql import SqlEventTrail, make_engine, make_session_factory

REPO = Path(__file__).resolve().parents[2]
TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmnop"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DB_URL", "REGISTRY_LISTEN")}
    env["PYTHONPATH"] = str(REPO / "src")
    env.update(extra)
    return env


def test_migrate_command_creates_the_default_sqlite_db_from_any_cwd(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tgm.services.botregistry", "migrate"],
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
            [sys.executable, "-m", "tgm.services.botregistry", "serve"],
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


def _trail(db_url: str) -> tuple[sa.Engine, SqlEventTrail]:
    engine = make_engine(db_url)
    return engine, SqlEventTrail(make_session_factory(engine))


def _aged(days: float, bot_id: str) -> Event:
    at = datetime.now(UTC) - timedelta(days=days)
    return Event(at, EventKind.BOT_DISABLED, "telegram:1", bot_id, Outcome.DONE, {})


def _left(trail: SqlEventTrail) -> list[str]:
    return sorted(event.bot_id or "" for event in trail.recent(EventFilter()))


def test_purge_events_command_keeps_the_retention_period(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(db_url)
    engine, trail = _trail(db_url)
    try:
        trail.record(_aged(181, "old"))
        trail.record(_aged(179, "young"))
        result = subprocess.run(
            [sys.executable, "-m", "tgm.services.botregistry", "purge-events"],
            cwd=tmp_path,
            env=_env(DB_URL=db_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "purged 1 events older than 180 days" in result.stdout
        assert _left(trail) == ["young"]
    finally:
        engine.dispose()


def test_serve_purges_expired_events_periodically(tmp_path: Path) -> None:
    """EVENT_RETENTION_DAYS and EVENT_PURGE_INTERVAL_SECONDS reach the running registry's retention thread."""
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(db_url)
    engine, trail = _trail(db_url)
    trail.record(_aged(31, "first"))
    trail.record(_aged(29, "young"))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tgm.services.botregistry", "serve"],
        cwd=tmp_path,
        env=_env(
            DB_URL=db_url,
            REGISTRY_LISTEN=f"127.0.0.1:{port}",
            VAULT_ADDR=f"127.0.0.1:{_free_port()}",
            EVENT_RETENTION_DAYS="30",
            EVENT_PURGE_INTERVAL_SECONDS="0.2",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def purged_down_to(expected: list[str]) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _left(trail) == expected:
                return True
            time.sleep(0.05)
        return False

    try:
        assert wait_until_serving(f"127.0.0.1:{port}", timeout_seconds=30)
        assert purged_down_to(["young"])
        trail.record(_aged(45, "second"))  # after the first turn: only a later turn can take it
        assert purged_down_to(["young"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        engine.dispose()
