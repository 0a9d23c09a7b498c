"""The hash-chained audit log: `python -m services.vault audit verify` finds the first removed, edited or moved line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from services.vault.audit import Anchor, AuditLog, verify

REPO = Path(__file__).resolve().parents[2]
LINES = 6


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    audit = AuditLog(path)
    for index in range(LINES // 2):
        audit.append({"caller": "dispatcher", "verb": "decrypt", "bot": f"bot-{index}", "outcome": "ok"})
    audit.close()
    # A restart continues the same chain.
    audit = AuditLog(path)
    for index in range(LINES // 2):
        audit.append({"caller": "gateway", "verb": "encrypt", "bot": f"bot-{index}", "outcome": "denied"})
    audit.close()
    return path


def _cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.vault", "audit", "verify", "--file", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _rewrite(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    path.write_text("".join(line + "\n" for line in change(path.read_text().splitlines())))


def test_intact_log_verifies(log_file: Path) -> None:
    result = _cli(log_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok {LINES} lines")
    assert verify(log_file).head == json.loads(log_file.read_text().splitlines()[-1])["hash"]


def _edit(lines: list[str]) -> list[str]:
    entry = json.loads(lines[2])
    entry["outcome"] = "ok" if entry["outcome"] != "ok" else "denied"
    lines[2] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return lines


def _edit_and_rehash_alone(lines: list[str]) -> list[str]:
    # An attacker who recomputes the edited line's own hash still breaks the next line's prev_hash.
    from services.vault.audit import chain_hash

    entry = json.loads(lines[2])
    entry.pop("hash")
    entry["bot"] = "bot-evil"
    entry["hash"] = chain_hash(entry["prev_hash"], entry)
    lines[2] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return lines


@pytest.mark.parametrize(
    ("change", "bad_line"),
    [
        (lambda lines: lines[:2] + lines[3:], 3),  # line 3 deleted: the old line 4 is now line 3
        (_edit, 3),
        (_edit_and_rehash_alone, 4),
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2),  # lines 2 and 3 swapped
        (lambda lines: lines[1:], 1),  # the first line deleted
        (lambda lines: [*lines[:4], "not json", *lines[4:]], 5),
    ],
    ids=["deleted", "edited", "edited-and-rehashed", "reordered", "first-deleted", "garbage-inserted"],
)
def test_tampering_is_found_at_the_first_bad_line(
    log_file: Path, change: Callable[[list[str]], list[str]], bad_line: int
) -> None:
    _rewrite(log_file, change)
    assert verify(log_file).bad_line == bad_line
    result = _cli(log_file)
    assert result.returncode == 1
    assert f"line {bad_line}:" in result.stderr


def test_appending_after_a_restart_refuses_a_torn_tail(log_file: Path) -> None:
    with log_file.open("a") as handle:
        handle.write('{"half a line')
    with pytest.raises(ValueError, match="audit verify"):
        AuditLog(log_file)


def _cli_anchor(path: Path, anchor: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.vault", "audit", "verify", "--file", str(path), "--anchor", anchor],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_every_line_has_its_seq_and_a_restart_resumes_it(log_file: Path) -> None:
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [entry["seq"] for entry in entries] == list(range(1, LINES + 1))
    audit = AuditLog(log_file)
    assert audit.head == Anchor(LINES, entries[-1]["hash"])
    assert audit.append({"caller": "operator", "verb": "key_status", "outcome": "ok"}).seq == LINES + 1
    audit.close()


def test_a_cut_tail_is_caught_by_the_last_logged_anchor(log_file: Path) -> None:
    """The file alone cannot show a cut tail; the anchor the vault logged (and shipped) can."""
    last = json.loads(log_file.read_text().splitlines()[-1])
    anchor = f"{last['seq']}:{last['hash']}"
    assert _cli_anchor(log_file, anchor).returncode == 0
    _rewrite(log_file, lambda lines: lines[:-2])
    plain = _cli(log_file)  # a shorter chain is still a valid chain...
    assert plain.returncode == 0 and f"ok {LINES - 2} lines seq={LINES - 2}" in plain.stdout
    cut = _cli_anchor(log_file, anchor)  # ...but not one that holds the anchored line
    assert cut.returncode == 1 and "tail cut" in cut.stderr
    assert not verify(log_file, Anchor.parse(anchor)).ok
    # Cut and regrown to the same length with forged lines: the anchored line's hash no longer matches.
    forged = AuditLog(log_file)
    forged.append({"caller": "operator", "verb": "key_status", "outcome": "ok"})
    forged.append({"caller": "operator", "verb": "key_status", "outcome": "ok"})
    forged.close()
    verdict = verify(log_file, Anchor.parse(anchor))
    assert not verdict.ok and verdict.bad_line == LINES and "rewritten" in verdict.reason


def test_a_bad_anchor_argument_is_a_usage_error(log_file: Path) -> None:
    assert _cli_anchor(log_file, "not-an-anchor").returncode == 2


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:7]))  # the kernel may write less
    audit = AuditLog(tmp_path / "audit.log", fsync=False)
    for index in range(3):
        audit.append({"caller": "dispatcher", "verb": "decrypt", "bot": f"bot-{index}", "outcome": "ok"})
    audit.close()
    assert verify(tmp_path / "audit.log").ok


def test_a_failed_fsync_breaks_the_log_without_repeating_a_sequence_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from services.vault.audit import AuditLogBroken

    path = tmp_path / "audit.log"
    audit = AuditLog(path, fsync=True)
    audit.append({"caller": "dispatcher", "verb": "decrypt", "outcome": "ok"})

    def io_error(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", io_error)
    with pytest.raises(AuditLogBroken):
        audit.append({"caller": "dispatcher", "verb": "decrypt", "outcome": "ok"})
    monkeypatch.undo()
    with pytest.raises(AuditLogBroken, match="broken"):
        audit.append({"caller": "dispatcher", "verb": "decrypt", "outcome": "ok"})
    audit.close()
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert seqs == sorted(set(seqs)), "no sequence number twice"
    assert AuditLog(path).head.seq == len(seqs)  # a restart resumes from what the file holds
