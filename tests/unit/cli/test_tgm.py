"""`tgm`, the operators' single entry point: its verbs, and that each reaches the tool that owns the job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tgm.apps.cli.__main__ import main

REPO = Path(__file__).resolve().parents[3]


def test_help_lists_every_verb() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tgm.apps.cli", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for verb in ("run", "health", "queue", "keys", "audit", "rewrap", "dead-letters", "backup", "restore", "events"):
        assert verb in done.stdout


def test_a_verb_reaches_its_tool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tgm.services.vault.audit import AuditLog
    from tgm.services.vault.keystore import KeyStore

    keyring, log = tmp_path / "vault" / "keyring.json", tmp_path / "audit.log"
    key = KeyStore.create(keyring, None).audit_key
    assert key is not None
    audit = AuditLog(log, fsync=False, key=key, anchor_path=tmp_path / "audit.anchor", anchor_may_be_missing=True)
    audit.append({"caller": "operator", "verb": "key_status", "outcome": "ok"})
    audit.close()
    monkeypatch.setenv("VAULT_KEYRING_FILE", str(keyring))
    monkeypatch.setenv("VAULT_AUDIT_ANCHOR_FILE", str(tmp_path / "audit.anchor"))
    assert main(["audit", "verify", "--file", str(log)]) == 0
    assert capsys.readouterr().out.startswith("ok 1 lines")
    log.write_text(log.read_text().replace("key_status", "key_rotate"))
    assert main(["audit", "verify", "--file", str(log)]) == 1


def test_health_without_a_stack_file_is_a_clear_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--stack-file", str(tmp_path / "missing.json")]) == 2
    assert "no running stack" in capsys.readouterr().err


def test_health_names_the_component_that_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tgm.observability.metrics import MetricsServer

    up = MetricsServer("127.0.0.1", 0).start()
    try:
        stack_file = tmp_path / "stack.json"
        probes = {"vault": f"http://127.0.0.1:{up.port}/readyz", "dispatcher-0": "http://127.0.0.1:9/readyz"}
        stack_file.write_text(json.dumps({"probes": probes}))
        assert main(["health", "--stack-file", str(stack_file)]) == 1
        lines = capsys.readouterr().out.splitlines()
        assert any(line.startswith("vault") and " ok " in line for line in lines)
        assert any(line.startswith("dispatcher-0") and "FAILING" in line for line in lines)
    finally:
        up.stop()


def test_queue_needs_redis(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["queue"]) == 2
    assert "REDIS_URL" in capsys.readouterr().err


def test_queue_shows_depths_and_the_fullest_mailboxes(
    redis_server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis

    from tgm.messaging.mailbox import KEY_PREFIX

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.rpush("dramatiq:updates", *[b"m"] * 3)
    client.rpush(f"{KEY_PREFIX}:bot-a:42", *[b"u"] * 5)
    client.rpush(f"{KEY_PREFIX}:bot-b:7", b"u")
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["queue"]) == 0
    out = capsys.readouterr().out
    assert "queue updates   ready       3" in out
    mailboxes = [line for line in out.splitlines() if line.startswith("mailbox")]
    assert mailboxes[0].startswith(f"mailbox {KEY_PREFIX}:bot-a:42  5 updates")
    client.flushall()
