"""`tgm backup --out FILE` / `tgm restore FILE`: the registry's database and the vault's keyring, audit log and
anchor in one encrypted archive. They only make sense together: the database holds tokens sealed under the
keyring, and a keyring without its audit log and anchor makes the vault refuse to start (by design).

Archive: `MAGIC | salt | scrypt parameters | nonce prefix`, then the plaintext (a tar stream: `manifest.json` first,
then the members) in 64 KiB chunks, each sealed with AES-256-GCM under the key scrypt derives from `BACKUP_KEY`
(the header is every chunk's associated data; the nonce is the prefix, the chunk's number and a last-chunk flag, as
in age's STREAM: reordered, dropped or cut chunks and an edited header all fail to open). The manifest holds the
versions, the alembic revision, the creation time and each member's sha256 and size. Without `BACKUP_KEY` (32+
characters, never one of the vault's keys) nothing runs: fail closed.

Consistency (the vault may be running): the database is dumped first (`pg_dump` takes one snapshot; SQLite's
backup API copies a consistent file), then the anchor, then the audit log up to the anchored line, then the
keyring last. A running vault only adds key versions (rotate; retire keeps the bytes; destroy needs the vault
stopped), so a keyring read after the dump opens every token in it. The keyring and anchor are replaced by rename,
so one read of each sees a whole file; the vault writes a line before moving the anchor to it, so the log holds at
least the anchored lines, and the archive keeps exactly those: log and anchor agree, later lines are simply not in
this backup. When no vault runs, `<keyring>.lock` is held during the copy so none starts midway; when one runs (the
lock is held) the order above is what keeps the copy whole — stopping the vault for a backup is not needed.

Restore writes only into an empty target (no keyring, audit log or anchor at their paths; a database with no
tables), and only after the whole archive decrypted and every member matched the manifest: a wrong key, a
tampered archive or a non-empty target writes nothing. Files are written 0600 in 0700 folders.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tgm.host.files import LockHeld, hold_lock, private_dir

MAGIC = b"TGMBAK01"
_PARAMS = struct.Struct(">16sBBB7s")  # salt, log2(scrypt n), r, p, nonce prefix
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
CHUNK = 64 * 1024
_TAG = 16
MIN_KEY_CHARS = 32
MANIFEST = "manifest.json"
DB_POSTGRES, DB_SQLITE = "database.pgdump", "database.sqlite3"
KEYRING, AUDIT, ANCHOR = "vault/keyring.json", "vault/audit.log", "vault/audit.anchor"
_KNOWN = frozenset((DB_POSTGRES, DB_SQLITE, KEYRING, AUDIT, ANCHOR))  # the only names ever unpacked


class BackupError(Exception):
    """The backup or restore cannot be done; nothing was written. The message names what to fix, never a key."""


@dataclass(frozen=True)
class Targets:
    """Where the data lives (backup) or goes (restore)."""

    db_url: str
    keyring: Path
    audit: Path
    anchor: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Targets:
        """The services' own variables and defaults (`make run`'s `.run/`). The anchor's default is the vault's
        (src/tgm/services/vault/container.py, `audit_anchor_path`): `audit.anchor` beside the keyring."""
        from tgm.services.botregistry.settings import DEFAULT_DB_URL

        keyring = Path(env.get("VAULT_KEYRING_FILE") or ".run/vault-keyring.json")
        anchor = env.get("VAULT_AUDIT_ANCHOR_FILE")
        return cls(
            db_url=env.get("DB_URL") or DEFAULT_DB_URL,
            keyring=keyring,
            audit=Path(env.get("VAULT_AUDIT_FILE") or ".run/vault-audit.log"),
            anchor=Path(anchor) if anchor else keyring.with_name("audit.anchor"),
        )


# --- the encrypted container ---------------------------------------------------------------------------------


def _derive(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> AESGCM:
    if not 10 <= log2_n <= 20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise BackupError("the archive's header is not valid (not a tgm backup, or damaged)")
    key = Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return AESGCM(key)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class _SealingWriter(io.RawIOBase):
    """A write-only stream that seals what it is given, chunk by chunk, into `out`."""

    def __init__(self, out: BinaryIO, passphrase: str) -> None:
        salt, prefix = os.urandom(16), os.urandom(7)
        self._header = MAGIC + _PARAMS.pack(salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, prefix)
        self._aead = _derive(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
        self._prefix = prefix
        self._out = out
        self._buffer = bytearray()
        self._counter = 0
        out.write(self._header)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._buffer += data
        while len(self._buffer) > CHUNK:  # keep at least one byte back: the last chunk is sealed as last
            self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def finish(self) -> None:
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _seal(self, chunk: bytes, last: bool) -> None:
        if self._counter >= 2**32 - 1:
            raise BackupError("the archive is too large")
        self._out.write(self._aead.encrypt(_nonce(self._prefix, self._counter, last), chunk, self._header))
        self._counter += 1


def _open_chunks(source: BinaryIO, passphrase: str) -> Iterator[bytes]:
    """The plaintext chunks of an archive; BackupError when the key is wrong or anything was changed or cut."""
    header = source.read(len(MAGIC) + _PARAMS.size)
    if len(header) != len(MAGIC) + _PARAMS.size or not header.startswith(MAGIC):
        raise BackupError("not a tgm backup archive (unknown header)")
    salt, log2_n, r, p, prefix = _PARAMS.unpack(header[len(MAGIC) :])
    aead = _derive(passphrase, salt, log2_n, r, p)
    counter = 0
    sealed = source.read(CHUNK + _TAG)
    while True:
        following = source.read(CHUNK + _TAG)
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, counter, last), sealed, header)
        except InvalidTag:
            raise BackupError("the archive does not open: wrong BACKUP_KEY, or the file was changed or cut") from None
        if last:
            return
        sealed, counter = following, counter + 1


# --- the key ----------------------------------------------------------------------------------------------------


def backup_key(env: Mapping[str, str], keyring: Path | None) -> str:
    """BACKUP_KEY, checked: present, 32+ characters, and none of the vault's keys (ENCRYPTION_KEY, the keyring's
    versions, its audit key) — a backup must not open with what it protects."""
    key = env.get("BACKUP_KEY", "")
    if not key:
        raise BackupError("set BACKUP_KEY (32+ characters, e.g. `openssl rand -base64 32`); kept away from backups")
    if len(key) < MIN_KEY_CHARS:
        raise BackupError(f"BACKUP_KEY is too short: use {MIN_KEY_CHARS}+ characters")
    vault_keys = _vault_key_bytes(env.get("ENCRYPTION_KEY", ""), keyring)
    mine = {key.encode("utf-8"), *_decoded(key)}
    if any(hmac.compare_digest(a, b) for a in mine for b in vault_keys):
        raise BackupError("BACKUP_KEY must not be one of the vault's keys: make a separate one")
    return key


def _decoded(text: str) -> set[bytes]:
    body = text.removeprefix("base64:")
    found: set[bytes] = set()
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with suppress(binascii.Error, ValueError):
            found.add(decode(body + "=" * (-len(body) % 4)))
    return found


def _vault_key_bytes(encryption_key: str, keyring: Path | None) -> set[bytes]:
    texts = [encryption_key] if encryption_key else []
    if keyring is not None and keyring.exists():
        with suppress(OSError, ValueError, AttributeError):
            document = json.loads(keyring.read_bytes())
            texts += [str(document.get("audit_key") or "")]
            texts += [str(v.get("key") or "") for v in document.get("versions", {}).values()]
    found: set[bytes] = set()
    for text in filter(None, texts):
        found |= {text.encode("utf-8"), *_decoded(text)}
    return found


# --- the database -----------------------------------------------------------------------------------------------


def _backend(db_url: str) -> str:
    from sqlalchemy.engine import make_url

    name = make_url(db_url).get_backend_name()
    if name not in ("postgresql", "sqlite"):
        raise BackupError(f"cannot back up a {name} database (PostgreSQL or SQLite)")
    return name


def _libpq(db_url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI for pg_dump/pg_restore without the password, which goes in PGPASSWORD (not on argv)."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str], what: str) -> str:
    if shutil.which(args[0]) is None:
        raise BackupError(f"{args[0]} not found: install postgresql-client (scripts/install-system-deps.sh)")
    # The arguments are ours (the tool, flags, a path and a URI from the operator's own DB_URL), no shell.
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=3600)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _sqlite_path(db_url: str) -> Path:
    from sqlalchemy.engine import make_url

    database = make_url(db_url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return Path(database)


def _dump_database(db_url: str, into: Path) -> tuple[str, str]:
    """Dumps the database into the folder `into`; (member name, tool version)."""
    if _backend(db_url) == "postgresql":
        uri, env = _libpq(db_url)
        target = into / DB_POSTGRES
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={target}", uri], env, "pg_dump")
        return DB_POSTGRES, _run(["pg_dump", "--version"], env, "pg_dump --version").strip()
    source = _sqlite_path(db_url)
    if not source.exists():
        raise BackupError(f"no SQLite database at {source}")
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(into / DB_SQLITE) as dst:
        src.backup(dst)  # a consistent copy while the registry writes
    return DB_SQLITE, f"sqlite {sqlite3.sqlite_version}"


def _alembic_revision(db_url: str) -> str | None:
    from sqlalchemy import pool, text

    from tgm.services.botregistry.adapters.sql import make_engine

    engine = make_engine(db_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    except Exception:  # no alembic table: a database the registry never migrated
        return None
    finally:
        engine.dispose()
    return None if row is None else str(row[0])


def _database_has_tables(db_url: str) -> bool:
    from sqlalchemy import inspect, pool

    from tgm.services.botregistry.adapters.sql import make_engine

    if _backend(db_url) == "sqlite":
        path = _sqlite_path(db_url)
        if not path.exists() or path.stat().st_size == 0:
            return False
    from sqlalchemy.exc import SQLAlchemyError

    engine = make_engine(db_url, poolclass=pool.NullPool)
    try:
        return bool(inspect(engine).get_table_names())
    except SQLAlchemyError as error:
        raise BackupError(f"cannot read the target database ({type(error).__name__}); check DB_URL") from None
    finally:
        engine.dispose()


# --- backup -----------------------------------------------------------------------------------------------------


@contextmanager
def _vault_quiet(keyring: Path) -> Iterator[bool]:
    """Holds `<keyring>.lock` while no vault runs (True), so none starts midway; False when a vault holds it."""
    fd: int | None = None
    with suppress(LockHeld):
        fd = hold_lock(keyring.with_name(keyring.name + ".lock"))
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def _vault_files(targets: Targets) -> dict[str, bytes]:
    """Anchor, then the audit log up to the anchored line, then the keyring (the order matters: module doc)."""
    if not targets.keyring.exists():
        raise BackupError(f"no vault keyring at {targets.keyring} (VAULT_KEYRING_FILE)")
    members: dict[str, bytes] = {}
    if targets.anchor.exists() or targets.audit.exists():
        try:
            anchor = targets.anchor.read_bytes()
            seq = int(json.loads(anchor)["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            raise BackupError(
                f"the audit anchor {targets.anchor} is missing or not valid; run `tgm audit verify`"
            ) from None
        lines: list[bytes] = []
        with targets.audit.open("rb") as log:
            for line in log:
                if len(lines) == seq:
                    break
                lines.append(line)
        if len(lines) != seq or (lines and not lines[-1].endswith(b"\n")):
            raise BackupError(
                f"the audit log {targets.audit} holds fewer lines than its anchor; run `tgm audit verify`"
            )
        members[ANCHOR], members[AUDIT] = anchor, b"".join(lines)
    members[KEYRING] = targets.keyring.read_bytes()  # replaced by rename: one read is one whole version
    return members


def _add(archive: tarfile.TarFile, name: str, size: int, reader: IO[bytes]) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, 0
    archive.addfile(info, reader)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def backup(targets: Targets, out: Path, passphrase: str, clock: type[datetime] = datetime) -> dict[str, object]:
    """Writes the encrypted archive to `out` (never over an existing file); returns its manifest."""
    if out.exists():
        raise BackupError(f"{out} exists; a backup never overwrites a file")
    from importlib.metadata import PackageNotFoundError, version

    with ExitStack() as stack:
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".tgm-backup-", dir=out.parent)))
        private_dir(staging)
        revision = _alembic_revision(targets.db_url)
        db_member, db_tool = _dump_database(targets.db_url, staging)
        quiet = stack.enter_context(_vault_quiet(targets.keyring))
        vault = _vault_files(targets)
        try:
            tgm_version = version("tgm")
        except PackageNotFoundError:
            tgm_version = "unknown"
        db_path = staging / db_member
        members: dict[str, dict[str, object]] = {
            db_member: {"sha256": _sha256_file(db_path), "size": db_path.stat().st_size}
        }
        members |= {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in vault.items()
        }
        manifest: dict[str, object] = {
            "format": 1,
            "created_at": clock.now(UTC).isoformat(timespec="seconds"),
            "tgm_version": tgm_version,
            "database": {"backend": _backend(targets.db_url), "tool": db_tool, "alembic_revision": revision},
            "vault_was_running": not quiet,
            "members": members,
        }
        partial = out.with_name(f".{out.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                sealing = _SealingWriter(handle, passphrase)
                with tarfile.open(fileobj=sealing, mode="w|", format=tarfile.PAX_FORMAT) as archive:
                    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
                    _add(archive, MANIFEST, len(text), io.BytesIO(text))
                    with db_path.open("rb") as dump:
                        _add(archive, db_member, db_path.stat().st_size, dump)
                    for name, data in vault.items():
                        _add(archive, name, len(data), io.BytesIO(data))
                sealing.finish()
                handle.flush()
                os.fsync(handle.fileno())
            os.link(partial, out)  # fails if `out` appeared meanwhile: never replaced
        finally:
            with suppress(FileNotFoundError):
                os.unlink(partial)
    return manifest


# --- restore ----------------------------------------------------------------------------------------------------


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _unpack(source: Path, passphrase: str, into: Path) -> dict[str, object]:
    """Decrypts and unpacks the whole archive into `into`, checking every member against the manifest."""
    manifest: dict[str, object] | None = None
    seen: set[str] = set()
    try:
        with (
            source.open("rb") as sealed,
            tarfile.open(
                fileobj=io.BufferedReader(_ChunkReader(_open_chunks(sealed, passphrase)), CHUNK), mode="r|"
            ) as archive,
        ):
            for info in archive:
                if manifest is None:
                    if info.name != MANIFEST or not info.isfile():
                        raise BackupError("the archive does not start with its manifest")
                    manifest = json.loads(_read_member(archive, info))
                    continue
                expected = _members(manifest).get(info.name)
                if expected is None or info.name not in _KNOWN or not info.isfile() or info.name in seen:
                    raise BackupError(f"the archive holds an unexpected member {info.name!r}")
                seen.add(info.name)
                target = into / info.name
                private_dir(target.parent)
                digest = hashlib.sha256()
                member = archive.extractfile(info)
                assert member is not None
                with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                    while block := member.read(CHUNK):
                        digest.update(block)
                        out.write(block)
                if not hmac.compare_digest(digest.hexdigest(), str(expected["sha256"])):
                    raise BackupError(f"{info.name} does not match the manifest's sha256")
    except (tarfile.TarError, ValueError, KeyError, TypeError) as error:
        raise BackupError(f"the archive is not a valid tgm backup ({type(error).__name__})") from None
    if manifest is None or seen != set(_members(manifest)):
        raise BackupError("the archive is incomplete: members named in the manifest are missing")
    return manifest


def _read_member(archive: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(info)
    assert handle is not None
    return handle.read()


def _members(manifest: Mapping[str, object]) -> dict[str, dict[str, object]]:
    members = manifest["members"]
    if not isinstance(members, dict):
        raise BackupError("the manifest is not valid")
    return members


def _refuse_non_empty(targets: Targets) -> None:
    present = [str(path) for path in (targets.keyring, targets.audit, targets.anchor) if path.exists()]
    if present:
        raise BackupError(f"restore writes only into an empty vault folder; already there: {', '.join(present)}")
    if _database_has_tables(targets.db_url):
        raise BackupError("restore writes only into an empty database; the target already has tables")


def _install(source: Path, target: Path) -> None:
    """Copies a verified member to `target`, 0600 in a 0700 folder, never over an existing file."""
    private_dir(target.parent)
    with source.open("rb") as src, open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
        dst.flush()
        os.fsync(dst.fileno())


def restore(archive: Path, targets: Targets, passphrase: str) -> dict[str, object]:
    """Verifies the whole archive, then writes the database and the vault's files into the empty `targets`."""
    _refuse_non_empty(targets)  # before the slow part too: an occupied target is the likeliest mistake
    with tempfile.TemporaryDirectory(prefix=".tgm-restore-") as folder:
        staging = private_dir(Path(folder))
        manifest = _unpack(archive, passphrase, staging)
        database = manifest["database"]
        backend = _backend(targets.db_url)
        if not isinstance(database, dict) or database.get("backend") != backend:
            held = database.get("backend") if isinstance(database, dict) else None
            raise BackupError(f"the archive holds a {held} database; the target is {backend}")
        if KEYRING not in _members(manifest):
            raise BackupError("the archive holds no vault keyring")
        _refuse_non_empty(targets)
        if backend == "postgresql":
            uri, env = _libpq(targets.db_url)
            dump = staging / DB_POSTGRES
            args = ["pg_restore", "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"]
            _run([*args, f"--dbname={uri}", str(dump)], env, "pg_restore")  # one transaction: all or nothing
        else:
            _install(staging / DB_SQLITE, _sqlite_path(targets.db_url))
        _install(staging / KEYRING, targets.keyring)
        if AUDIT in _members(manifest):
            _install(staging / AUDIT, targets.audit)
            _install(staging / ANCHOR, targets.anchor)
    return manifest


# --- the verbs --------------------------------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    backup_parser = sub.add_parser(
        "backup", help="database + vault keyring, audit log and anchor, encrypted (BACKUP_KEY)"
    )
    backup_parser.add_argument("--out", type=Path, required=True, help="the archive to write (never overwritten)")
    restore_parser = sub.add_parser("restore", help="an archive into an empty database and vault folder (BACKUP_KEY)")
    restore_parser.add_argument("file", type=Path)


def main(verb: str, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """`tgm backup` / `tgm restore`: the paths from the services' environment; exit 2 with one line on refusal."""
    env = os.environ if env is None else env
    targets = Targets.from_env(env)
    try:
        if verb == "backup":
            manifest = backup(targets, args.out, backup_key(env, targets.keyring))
            print(f"backup written to {args.out}: {', '.join(sorted(_members(manifest)))}")
        else:
            manifest = restore(args.file, targets, backup_key(env, None))
            print(
                f"restored {args.file} (made {manifest['created_at']}) into the database and {targets.keyring.parent}"
            )
    except BackupError as error:
        print(f"tgm {verb}: {error}", file=sys.stderr)
        return 2
    return 0
