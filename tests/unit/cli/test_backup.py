"""`tgm backup` / `tgm restore` on SQLite and real vault files: a round trip the vault accepts, and every refusal
(no key, a vault key, wrong key, tampered or cut archive, occupied target) writes nothing."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sqlite3
import stat
import tarfile
from pathlib import Path
from typing import IO

import pytest

from tgm.apps.cli import backup as cli
from tgm.apps.cli.backup import BackupError, Targets, backup, restore
from tgm.host.files import hold_lock
from tgm.services.botregistry import migrate
from tgm.services.vault.audit import AuditLog, read_anchor
from tgm.services.vault.keystore import KeyStore

KEY = "correct horse battery staple, but longer"


def _vault_files(folder: Path) -> Targets:
    return Targets(
        db_url=f"sqlite:///{folder / 'registry.db'}",
        keyring=folder / "vault" / "keyring.json",
        audit=folder / "vault" / "audit.log",
        anchor=folder / "vault" / "audit.anchor",
    )


@pytest.fixture
def source(tmp_path: Path) -> Targets:
    """A migrated registry database holding more than one archive chunk, a keyring and an anchored audit log."""
    targets = _vault_files(tmp_path / "source")
    migrate.upgrade(targets.db_url)
    with sqlite3.connect(targets.keyring.parent.parent / "registry.db") as db:
        db.execute("CREATE TABLE filler (data BLOB)")
        db.execute("INSERT INTO filler VALUES (?)", (os.urandom(3 * cli.CHUNK),))
    keys = KeyStore.create(targets.keyring, None)
    assert keys.audit_key is not None
    log = AuditLog(
        targets.audit, fsync=False, key=keys.audit_key, anchor_path=targets.anchor, anchor_may_be_missing=True
    )
    for verb in ("encrypt", "decrypt", "key_status"):
        log.append({"caller": "botregistry", "verb": verb, "outcome": "ok"})
    log.close()
    return targets


def _rows(db_url: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as db:
        return (
            sorted(db.execute("SELECT data FROM filler").fetchall())
            + db.execute("SELECT version_num FROM alembic_version").fetchall()
        )


def _nothing_written(targets: Targets) -> bool:
    return not any(p.exists() for p in (targets.keyring, targets.audit, targets.anchor, Path(targets.db_url[10:])))


def test_round_trip_gives_a_vault_that_opens_and_the_same_database(source: Targets, tmp_path: Path) -> None:
    archive = tmp_path / "tgm.backup"
    manifest = backup(source, archive, KEY)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert manifest["database"]["alembic_revision"] == _rows(source.db_url)[-1][0]  # type: ignore[index]
    assert set(manifest["members"]) == {cli.DB_SQLITE, cli.KEYRING, cli.AUDIT, cli.ANCHOR}  # type: ignore[arg-type]
    assert source.keyring.read_bytes() not in archive.read_bytes()  # encrypted at rest

    target = _vault_files(tmp_path / "fresh")
    restore(archive, target, KEY)
    for original, restored in ((source.keyring, target.keyring), (source.audit, target.audit)):
        assert restored.read_bytes() == original.read_bytes()
        assert stat.S_IMODE(restored.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.keyring.parent.stat().st_mode) == 0o700
    assert _rows(target.db_url) == _rows(source.db_url)
    keys = KeyStore.open(target.keyring, None)  # the vault's own checks: key file, audit chain and anchor
    assert keys.audit_key is not None
    reopened = AuditLog(target.audit, fsync=False, key=keys.audit_key, anchor_path=target.anchor)
    assert reopened.head.seq == 3
    reopened.close()


def test_a_running_vaults_unanchored_tail_is_left_out_and_the_copy_still_verifies(
    source: Targets, tmp_path: Path
) -> None:
    lock = hold_lock(source.keyring.with_name(source.keyring.name + ".lock"))  # a vault holds its keyring
    try:
        with source.audit.open("ab") as log:  # the vault wrote a line and has not moved the anchor yet
            log.write(b'{"seq":4,"half":"written"}\n')
        manifest = backup(source, tmp_path / "tgm.backup", KEY)
    finally:
        os.close(lock)
    assert manifest["vault_was_running"] is True
    target = _vault_files(tmp_path / "fresh")
    restore(tmp_path / "tgm.backup", target, KEY)
    assert len(target.audit.read_bytes().splitlines()) == 3
    keys = KeyStore.open(target.keyring, None)
    assert keys.audit_key is not None
    anchor = read_anchor(target.anchor, keys.audit_key)
    assert anchor is not None and anchor.seq == 3
    AuditLog(target.audit, fsync=False, key=keys.audit_key, anchor_path=target.anchor).close()


def test_wrong_key_writes_nothing(source: Targets, tmp_path: Path) -> None:
    backup(source, tmp_path / "tgm.backup", KEY)
    target = _vault_files(tmp_path / "fresh")
    with pytest.raises(BackupError, match="wrong BACKUP_KEY"):
        restore(tmp_path / "tgm.backup", target, KEY + "!")
    assert _nothing_written(target)


@pytest.mark.parametrize("damage", ["flip a byte", "cut the last chunk", "edit the header"])
def test_a_tampered_archive_writes_nothing(source: Targets, tmp_path: Path, damage: str) -> None:
    archive = tmp_path / "tgm.backup"
    backup(source, archive, KEY)
    data = bytearray(archive.read_bytes())
    header = len(cli.MAGIC) + cli._PARAMS.size
    assert len(data) > header + 3 * cli.CHUNK  # several chunks: a cut at a chunk boundary is possible
    if damage == "flip a byte":
        data[len(data) // 2] ^= 1
    elif damage == "cut the last chunk":
        del data[header + 2 * (cli.CHUNK + 16) :]
    else:
        data[len(cli.MAGIC) + 20] ^= 1  # the nonce prefix: authenticated as associated data
    archive.write_bytes(bytes(data))
    target = _vault_files(tmp_path / "fresh")
    with pytest.raises(BackupError, match="changed or cut"):
        restore(archive, target, KEY)
    assert _nothing_written(target)


def test_a_member_that_does_not_match_the_manifest_writes_nothing(
    source: Targets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealed with the right key, but the keyring in it is not the one the manifest hashed: refused before writing."""
    real_add = cli._add

    def add_another_keyring(archive: tarfile.TarFile, name: str, size: int, reader: IO[bytes]) -> None:
        if name == cli.KEYRING:
            data = reader.read()
            reader = io.BytesIO(data.replace(b'"primary": 1', b'"primary": 2'))
            assert reader.getvalue() != data
        real_add(archive, name, size, reader)

    monkeypatch.setattr(cli, "_add", add_another_keyring)
    backup(source, tmp_path / "tgm.backup", KEY)
    target = _vault_files(tmp_path / "fresh")
    with pytest.raises(BackupError, match="does not match the manifest"):
        restore(tmp_path / "tgm.backup", target, KEY)
    assert _nothing_written(target)


@pytest.mark.parametrize("occupied", ["keyring", "anchor", "database"])
def test_restore_into_an_occupied_target_is_refused_and_changes_nothing(
    source: Targets, tmp_path: Path, occupied: str
) -> None:
    backup(source, tmp_path / "tgm.backup", KEY)
    target = _vault_files(tmp_path / "fresh")
    if occupied == "database":
        migrate.upgrade(target.db_url)
    else:
        path = target.keyring if occupied == "keyring" else target.anchor
        path.parent.mkdir(parents=True)
        path.write_text("theirs")
    before = {p: p.read_bytes() for p in target.keyring.parent.parent.rglob("*") if p.is_file()}
    with pytest.raises(BackupError, match="only into an empty"):
        restore(tmp_path / "tgm.backup", target, KEY)
    after = {p: p.read_bytes() for p in target.keyring.parent.parent.rglob("*") if p.is_file()}
    assert after == before


def test_backup_never_overwrites_a_file(source: Targets, tmp_path: Path) -> None:
    out = tmp_path / "tgm.backup"
    out.write_text("an older backup")
    with pytest.raises(BackupError, match="never overwrites"):
        backup(source, out, KEY)
    assert out.read_text() == "an older backup"


def _env(targets: Targets, **extra: str) -> dict[str, str]:
    return {
        "DB_URL": targets.db_url,
        "VAULT_KEYRING_FILE": str(targets.keyring),
        "VAULT_AUDIT_FILE": str(targets.audit),
        "VAULT_AUDIT_ANCHOR_FILE": str(targets.anchor),
        **extra,
    }


def _vault_key(keyring: Path, version: str) -> str:
    return str(json.loads(keyring.read_text())["versions"][version]["key"])


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "set BACKUP_KEY"),
        ("short", "too short"),
        ("keyring", "not be one of the vault's keys"),
        ("keyring-bare", "not be one of the vault's keys"),
        ("ENCRYPTION_KEY", "not be one of the vault's keys"),
    ],
)
def test_the_cli_fails_closed_without_a_proper_key(
    source: Targets, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str | None, reason: str
) -> None:
    env = _env(source)
    vault_key = _vault_key(source.keyring, "1")
    if key == "short":
        env["BACKUP_KEY"] = "x" * 31
    elif key == "keyring":
        env["BACKUP_KEY"] = vault_key
    elif key == "keyring-bare":
        env["BACKUP_KEY"] = base64.urlsafe_b64encode(base64.b64decode(vault_key.removeprefix("base64:"))).decode()
    elif key == "ENCRYPTION_KEY":
        other = "base64:" + base64.b64encode(os.urandom(32)).decode()
        env.update(ENCRYPTION_KEY=other, BACKUP_KEY=other)
    out = tmp_path / "tgm.backup"
    assert cli.main("backup", argparse.Namespace(out=out), env) == 2
    assert reason in capsys.readouterr().err
    assert not out.exists()
    assert vault_key.removeprefix("base64:") not in capsys.readouterr().err


def test_the_cli_round_trip(
    source: Targets, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tgm.apps.cli.__main__ import main

    out = tmp_path / "tgm.backup"
    target = _vault_files(tmp_path / "fresh")
    for name, value in _env(source, BACKUP_KEY=KEY).items():
        monkeypatch.setenv(name, value)
    assert main(["backup", "--out", str(out)]) == 0
    for name, value in _env(target).items():
        monkeypatch.setenv(name, value)
    assert main(["restore", str(out)]) == 0
    assert target.keyring.read_bytes() == source.keyring.read_bytes()
    assert main(["restore", str(out)]) == 2  # the target is occupied now
    assert "only into an empty" in capsys.readouterr().err


def test_an_unreachable_target_database_is_a_clear_refusal(source: Targets, tmp_path: Path) -> None:
    backup(source, tmp_path / "tgm.backup", KEY)
    target = _vault_files(tmp_path / "fresh")
    unreachable = Targets("postgresql+psycopg://tgm:pw@127.0.0.1:9/none", target.keyring, target.audit, target.anchor)
    with pytest.raises(BackupError, match="cannot read the target database"):
        restore(tmp_path / "tgm.backup", unreachable, KEY)
    assert _nothing_written(target)
