"""The keyed hash-chained audit log: `python -m tgm.services.vault audit verify` finds the first removed, edited or
moved line; the vault refuses to start on a log that lost what its anchor holds, or on an unkeyed one."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tgm.services.vault.audit import Anchor, AuditLog, verify
from tgm.services.vault.keystore import KeyStore

REPO = Path(__file__).resolve().parents[2]
LINES = 6
KEY = b"a" * 31 + b"#"  # the `log_file` fixture's audit key (its keyring's, for the command line)


def _keyring(folder: Path) -> Path:
    return folder / "vault" / "keyring.json"


def _vault_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TLS_", "VAULT_", "ENCRYPTION_KEY"))}
    return {**env, "VAULT_KEYRING_FILE": str(_keyring(folder)), "VAULT_AUDIT_FILE": str(folder / "audit.log"), **extra}


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    """Six lines under KEY, written across a restart; the keyring beside it holds KEY. Its own anchor is kept apart
    (`own.anchor`), so `audit verify` without `--anchor` checks the file alone (the vault's anchor file is absent)."""
    keyring = _keyring(tmp_path)
    KeyStore.create(keyring, None)
    document = json.loads(keyring.read_text())
    keyring.write_text(json.dumps({**document, "audit_key": "base64:" + base64.b64encode(KEY).decode()}))
    path, anchor = tmp_path / "audit.log", tmp_path / "own.anchor"
    audit = AuditLog(path, key=KEY, anchor_path=anchor, anchor_may_be_missing=True)
    for index in range(LINES // 2):
        audit.append({"caller": "dispatcher", "verb": "decrypt", "bot": f"bot-{index}", "outcome": "ok"})
    audit.close()
    # A restart continues the same chain.
    audit = AuditLog(path, key=KEY, anchor_path=anchor)
    for index in range(LINES // 2):
        audit.append({"caller": "gateway", "verb": "encrypt", "bot": f"bot-{index}", "outcome": "denied"})
    audit.close()
    return path


def _cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tgm.services.vault", "audit", "verify", "--file", str(path)],
        cwd=REPO, env=_vault_env(path.parent), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _rewrite(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    path.write_text("".join(line + "\n" for line in change(path.read_text().splitlines())))


def test_intact_log_verifies(log_file: Path) -> None:
    result = _cli(log_file)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok {LINES} lines")
    assert verify(log_file, key=KEY).head == json.loads(log_file.read_text().splitlines()[-1])["hash"]


def _edit(lines: list[str]) -> list[str]:
    entry = json.loads(lines[2])
    entry["outcome"] = "ok" if entry["outcome"] != "ok" else "denied"
    lines[2] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return lines


def _edit_and_rehash_alone(lines: list[str]) -> list[str]:
    # Even with the key, recomputing the edited line's own hash still breaks the next line's prev_hash.
    from tgm.services.vault.audit import chain_hash

    entry = json.loads(lines[2])
    entry.pop("hash")
    entry["bot"] = "bot-evil"
    entry["hash"] = chain_hash(entry["prev_hash"], entry, KEY)
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
    assert verify(log_file, key=KEY).bad_line == bad_line
    result = _cli(log_file)
    assert result.returncode == 1
    assert f"line {bad_line}:" in result.stderr


def test_appending_after_a_restart_refuses_a_torn_tail(log_file: Path) -> None:
    with log_file.open("a") as handle:
        handle.write('{"half a line')
    with pytest.raises(ValueError, match="audit verify"):
        AuditLog(log_file, key=KEY, anchor_path=log_file.with_name("own.anchor"))


def _cli_anchor(path: Path, anchor: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tgm.services.vault", "audit", "verify", "--file", str(path), "--anchor", anchor],
        cwd=REPO, env=_vault_env(path.parent), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_every_line_has_its_seq_and_a_restart_resumes_it(log_file: Path) -> None:
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [entry["seq"] for entry in entries] == list(range(1, LINES + 1))
    audit = AuditLog(log_file, key=KEY, anchor_path=log_file.with_name("own.anchor"))
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
    assert not verify(log_file, Anchor.parse(anchor), key=KEY).ok
    # Cut and regrown to the same length (by someone holding the key): the anchored line's hash no longer matches.
    forged = AuditLog(log_file, key=KEY, anchor_path=log_file.with_name("forger.anchor"), anchor_may_be_missing=True)
    forged.append({"caller": "operator", "verb": "key_status", "outcome": "ok"})
    forged.append({"caller": "operator", "verb": "key_status", "outcome": "ok"})
    forged.close()
    verdict = verify(log_file, Anchor.parse(anchor), key=KEY)
    assert not verdict.ok and verdict.bad_line == LINES and "rewritten" in verdict.reason


def test_a_bad_anchor_argument_is_a_usage_error(log_file: Path) -> None:
    assert _cli_anchor(log_file, "not-an-anchor").returncode == 2


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:7]))  # the kernel may write less
    audit = AuditLog(
        tmp_path / "audit.log", fsync=False, key=KEY, anchor_path=tmp_path / "audit.anchor", anchor_may_be_missing=True
    )
    for index in range(3):
        audit.append({"caller": "dispatcher", "verb": "decrypt", "bot": f"bot-{index}", "outcome": "ok"})
    audit.close()
    assert verify(tmp_path / "audit.log", key=KEY).ok


def test_a_failed_fsync_breaks_the_log_without_repeating_a_sequence_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from tgm.services.vault.audit import AuditLogBroken

    path, anchor = tmp_path / "audit.log", tmp_path / "audit.anchor"
    audit = AuditLog(path, fsync=True, key=KEY, anchor_path=anchor, anchor_may_be_missing=True)
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
    assert AuditLog(path, key=KEY, anchor_path=anchor).head.seq == len(seqs)  # a restart resumes what the file holds


# ---- keyed chain and the anchor outside the file (issue 11, item 4) ----

AUDIT_KEY = b"k" * 31 + b"!"
OTHER_KEY = b"o" * 31 + b"?"
RECORD = {"caller": "dispatcher", "verb": "decrypt", "bot": "bot-1", "outcome": "ok"}


def _keyed(tmp_path: Path, lines: int = 4, **options: object) -> tuple[Path, Path]:
    path, anchor = tmp_path / "audit.log", tmp_path / "private" / "audit.anchor"
    anchor.parent.mkdir(exist_ok=True)
    audit = AuditLog(
        path,
        fsync=False,
        key=AUDIT_KEY,
        anchor_path=anchor,
        anchor_may_be_missing=True,
        **options,  # type: ignore[arg-type]
    )
    for _ in range(lines):
        audit.append(RECORD)
    audit.close()
    return path, anchor


def _reopen(path: Path, anchor: Path, key: bytes = AUDIT_KEY) -> AuditLog:
    return AuditLog(path, fsync=False, key=key, anchor_path=anchor)


def test_keyed_lines_verify_only_under_the_audit_key(tmp_path: Path) -> None:
    path, _ = _keyed(tmp_path)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert {entry["chain"] for entry in entries} == {"hmac-sha256"}
    assert verify(path, key=AUDIT_KEY).ok
    assert verify(path, key=OTHER_KEY).bad_line == 1


def test_a_line_rewritten_without_the_key_is_found(tmp_path: Path) -> None:
    """Someone who can write the file but not read the keyring: they can recompute SHA-256, not the HMAC."""
    from tgm.services.vault.audit import chain_hash

    path, _ = _keyed(tmp_path)

    def forge(lines: list[str]) -> list[str]:
        entry = json.loads(lines[1])
        entry.pop("hash")
        entry["bot"] = "bot-evil"
        entry["hash"] = chain_hash(entry["prev_hash"], entry, OTHER_KEY)
        lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        return lines

    _rewrite(path, forge)
    assert verify(path, key=AUDIT_KEY).bad_line == 2


def _unkeyed_line(seq: int, prev_hash: str) -> str:
    """A line as the vault wrote them before the chain was keyed (never released): a plain SHA-256 link."""
    entry = {**RECORD, "seq": seq, "prev_hash": prev_hash, "time": "2026-11-01T00:00:00.000000+00:00"}
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    entry["hash"] = hashlib.sha256((prev_hash + canonical).encode()).hexdigest()
    return json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"


def test_an_unkeyed_line_after_keyed_ones_is_a_downgrade(tmp_path: Path) -> None:
    path, _ = _keyed(tmp_path, lines=2)
    last = json.loads(path.read_text().splitlines()[-1])
    with path.open("a") as handle:
        handle.write(_unkeyed_line(3, last["hash"]))
    verdict = verify(path, key=AUDIT_KEY)
    assert not verdict.ok and verdict.bad_line == 3 and "downgrade" in verdict.reason


def test_a_restart_resumes_a_keyed_log_and_moves_the_anchor(tmp_path: Path) -> None:
    from tgm.services.vault.audit import read_anchor

    path, anchor = _keyed(tmp_path)
    audit = _reopen(path, anchor)
    assert audit.head.seq == 4
    assert audit.append(RECORD).seq == 5
    audit.close()
    assert read_anchor(anchor, AUDIT_KEY) == Anchor(5, json.loads(path.read_text().splitlines()[-1])["hash"])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda path, anchor: _rewrite(path, lambda lines: lines[:-2]), "tail cut"),
        (lambda path, anchor: path.unlink(), "log .* is missing"),
        (lambda path, anchor: anchor.unlink(), "anchor .* is missing"),
        (lambda path, anchor: path.write_text(""), "tail cut"),
        (
            lambda path, anchor: anchor.write_text(json.dumps({**json.loads(anchor.read_text()), "seq": 2})),
            "not written by this vault",
        ),
        (lambda path, anchor: anchor.write_text("{"), "not valid"),
    ],
    ids=["tail-cut", "log-removed", "anchor-removed", "log-emptied", "anchor-forged", "anchor-garbage"],
)
def test_the_vault_refuses_to_start_on_a_log_that_lost_what_its_anchor_holds(
    tmp_path: Path, damage: Callable[[Path, Path], None], reason: str
) -> None:
    from tgm.services.vault.audit import AuditLogTampered

    path, anchor = _keyed(tmp_path)
    damage(path, anchor)
    with pytest.raises(AuditLogTampered, match=reason):
        _reopen(path, anchor)


def test_a_log_cut_and_regrown_under_another_key_is_refused(tmp_path: Path) -> None:
    from tgm.services.vault.audit import AuditLogTampered

    path, anchor = _keyed(tmp_path)
    with pytest.raises(AuditLogTampered):
        _reopen(path, anchor, key=OTHER_KEY)


def test_an_unkeyed_log_stops_the_vault_until_it_is_archived(tmp_path: Path) -> None:
    """Logs from before the keyed chain (never released) are not read: the vault refuses to start on one, saying to
    archive it; then a keyring from that time gets its audit key and a new, keyed log starts."""
    from tgm.services.vault.audit import UNKEYED_LOG, AuditLogTampered
    from tgm.services.vault.container import audit_from_settings
    from tgm.services.vault.settings import VaultSettings

    keyring, path = _keyring(tmp_path), tmp_path / "audit.log"
    KeyStore.create(keyring, None)
    old = {k: v for k, v in json.loads(keyring.read_text()).items() if k != "audit_key"}  # a keyring of that time
    keyring.write_text(json.dumps(old))
    first = _unkeyed_line(1, "0" * 64)
    path.write_text(first + _unkeyed_line(2, json.loads(first)["hash"]))
    assert verify(path, key=AUDIT_KEY).reason == UNKEYED_LOG
    serve = subprocess.run(
        [sys.executable, "-m", "tgm.services.vault", "serve"],
        cwd=REPO, env=_vault_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert serve.returncode == 2 and "is not keyed" in serve.stderr and "archive it and start a new log" in serve.stderr
    assert json.loads(keyring.read_text()) == old  # nothing added while the old log is there
    settings = VaultSettings(vault_keyring_file=keyring, vault_audit_file=path, vault_audit_fsync=False)
    with pytest.raises(AuditLogTampered, match="archive it"):
        audit_from_settings(settings, KeyStore.open(keyring, None))
    path.rename(tmp_path / "audit.log.archived")
    audit = audit_from_settings(settings, KeyStore.open(keyring, None))  # the audit key is added now
    assert audit.append(RECORD).seq == 1
    audit.close()
    keys = KeyStore.open(keyring, None)
    assert keys.audit_key is not None and verify(path, key=keys.audit_key).ok
    audit_from_settings(settings, keys).close()  # and from then on the anchor is required and found


def test_a_keyed_log_whose_keyring_lost_its_key_is_not_taken_for_an_old_one(tmp_path: Path) -> None:
    """A keyring restored without its audit key (or stripped of it) beside a keyed log: archiving that log would
    restart the evidence chain, so the vault says to restore the keyring instead, and adds no key."""
    from tgm.services.vault.audit import KEY_LOST, AuditLogTampered
    from tgm.services.vault.container import audit_from_settings
    from tgm.services.vault.settings import VaultSettings

    keyring, path = _keyring(tmp_path), tmp_path / "audit.log"
    KeyStore.create(keyring, None)
    settings = VaultSettings(vault_keyring_file=keyring, vault_audit_file=path, vault_audit_fsync=False)
    audit = audit_from_settings(settings, KeyStore.open(keyring, None), new_keyring=True)
    audit.append(RECORD)
    audit.close()
    stripped = {k: v for k, v in json.loads(keyring.read_text()).items() if k != "audit_key"}
    keyring.write_text(json.dumps(stripped))
    with pytest.raises(AuditLogTampered) as refused:
        audit_from_settings(settings, KeyStore.open(keyring, None))
    assert KEY_LOST in str(refused.value) and "archive it" not in str(refused.value)
    assert json.loads(keyring.read_text()) == stripped  # no new key was added


def test_a_failed_anchor_write_breaks_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tgm.services.vault import audit as audit_module
    from tgm.services.vault.audit import AuditLogBroken

    path, anchor = _keyed(tmp_path, lines=1)
    audit = _reopen(path, anchor)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_module, "write_anchor", disk_full)
    with pytest.raises(AuditLogBroken):
        audit.append(RECORD)
    monkeypatch.undo()
    with pytest.raises(AuditLogBroken, match="broken"):
        audit.append(RECORD)
    audit.close()


def test_the_vaults_settings_refuse_a_cut_log_and_the_cli_finds_it(tmp_path: Path) -> None:
    """End to end on the real wiring: `init` writes the first line and the anchor; the container's audit log
    refuses a cut tail; `audit verify` checks the anchor file by default, under the keyring's audit key."""
    import os

    from tgm.services.vault.audit import AuditLogTampered
    from tgm.services.vault.container import audit_from_settings
    from tgm.services.vault.keystore import KeyStore
    from tgm.services.vault.settings import VaultSettings

    keyring = tmp_path / "vault" / "keyring.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TLS_", "VAULT_", "ENCRYPTION_KEY"))}
    env.update(VAULT_KEYRING_FILE=str(keyring), VAULT_AUDIT_FILE=str(tmp_path / "audit.log"))
    init = subprocess.run(
        [sys.executable, "-m", "tgm.services.vault", "init"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    settings = VaultSettings(
        vault_keyring_file=keyring, vault_audit_file=tmp_path / "audit.log", vault_audit_fsync=False
    )
    audit = audit_from_settings(settings, KeyStore.open(keyring, None))
    for _ in range(3):
        audit.append(RECORD)
    audit.close()
    verify_command = [sys.executable, "-m", "tgm.services.vault", "audit", "verify"]
    intact = subprocess.run(verify_command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert intact.returncode == 0 and intact.stdout.startswith("ok 4 lines") and "anchor=4:" in intact.stdout
    _rewrite(tmp_path / "audit.log", lambda lines: lines[:-1])
    with pytest.raises(AuditLogTampered, match="tail cut"):
        audit_from_settings(settings, KeyStore.open(keyring, None))
    cut = subprocess.run(verify_command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert cut.returncode == 1 and "tail cut" in cut.stderr
