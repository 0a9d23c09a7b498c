"""Key versions on disk: a 0600 JSON keyring file that only the vault reads, rotated without downtime.

Written atomically, then swapped in memory; one vault owns the file (`lock_keyring`). README.md, "Keyring file".
"""

from __future__ import annotations

import hmac
import json
import os
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tgm.host.files import LockHeld, atomic_replace, hold_lock, private_dir
from tgm.services.vault.crypto import KEY_BYTES, Keyring
from tgm.services.vault.settings import VaultConfigError, decode_key, encode_key

FILE_FORMAT = 1
ROTATION_PERIOD = timedelta(days=90)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class KeyStoreError(Exception):
    """A key operation that cannot be done (e.g. retiring the primary); the message holds no key material."""


@dataclass(frozen=True)
class KeyVersion:
    version: int
    created_at: datetime
    retired: bool = False
    destroyed: bool = False  # retired and its key bytes removed from the keyring for good


@dataclass(frozen=True)
class KeyStatus:
    primary_version: int
    versions: tuple[KeyVersion, ...]
    ages: Mapping[int, timedelta]
    rotation_due: bool
    rotation_period: timedelta


class KeyStore:
    """The key versions, their metadata and the primary. `current()` is the Keyring of non-retired versions."""

    def __init__(
        self,
        keys: Mapping[int, bytes],
        meta: Mapping[int, KeyVersion],
        primary: int,
        path: Path,
        clock: Clock = utc_now,
        rotation_period: timedelta = ROTATION_PERIOD,
        audit_key: bytes | None = None,
    ) -> None:
        self._audit_key = audit_key
        self._keys = dict(keys)
        self._meta = dict(meta)
        self._primary = primary
        self._path = path
        self._clock = clock
        self._rotation_period = rotation_period
        self._lock = threading.Lock()
        self._keyring = self._build_keyring()

    @classmethod
    def open(
        cls,
        path: Path,
        bootstrap: bytes | None,
        clock: Clock = utc_now,
        rotation_period: timedelta = ROTATION_PERIOD,
    ) -> KeyStore:
        """Loads the keyring at `path`, which must exist (`create` makes it, once): a missing keyring is never
        rebuilt from the environment, so a retired or destroyed key cannot come back through configuration.
        `bootstrap` (ENCRYPTION_KEY, when set) must be the file's version 1."""
        if not path.exists():
            raise VaultConfigError(
                f"no keyring at VAULT_KEYRING_FILE {path}: create it once with `python -m tgm.services.vault init`; "
                "a vault never rebuilds a missing keyring from ENCRYPTION_KEY (restore the file from backup instead)"
            )
        keys, meta, primary, audit_key = _load(path)
        if bootstrap is not None and not hmac.compare_digest(keys.get(1, b""), bootstrap):
            raise VaultConfigError(
                "the environment's key version 1 does not match VAULT_KEYRING_FILE; "
                "the file is authoritative once it exists: unset ENCRYPTION_KEY or fix the file"
            )
        return cls(keys, meta, primary, path, clock, rotation_period, audit_key)

    @classmethod
    def create(
        cls,
        path: Path,
        bootstrap: bytes | None,
        clock: Clock = utc_now,
        rotation_period: timedelta = ROTATION_PERIOD,
    ) -> KeyStore:
        """Writes the first keyring at `path`: version 1 is the bootstrap key (ENCRYPTION_KEY), else a fresh random key.
        Refuses when a keyring is already there."""
        if path.exists():
            raise KeyStoreError(f"a keyring already exists at {path}; it is never overwritten")
        keys = {1: bootstrap or os.urandom(KEY_BYTES)}
        store = cls(keys, {1: KeyVersion(1, clock())}, 1, path, clock, rotation_period, os.urandom(KEY_BYTES))
        store._persist(store._keys, store._meta, store._primary)
        return store

    def current(self) -> Keyring:
        return self._keyring

    @property
    def audit_key(self) -> bytes | None:
        """The key of the audit chain; None for a keyring file from before it (see `ensure_audit_key`)."""
        return self._audit_key

    def ensure_audit_key(self) -> tuple[bytes, bool]:
        """The audit key, added (written atomically) to a keyring file that has none; and whether it was added now."""
        with self._lock:
            if self._audit_key is not None:
                return self._audit_key, False
            added = self._audit_key = os.urandom(KEY_BYTES)
            try:
                self._persist(self._keys, self._meta, self._primary)
            except BaseException:
                self._audit_key = None
                raise
            return added, True

    def status(self) -> KeyStatus:
        with self._lock:
            now = self._clock()
            versions = tuple(self._meta[v] for v in sorted(self._meta))
            ages = {meta.version: max(now - meta.created_at, timedelta(0)) for meta in versions}
            return KeyStatus(
                primary_version=self._primary,
                versions=versions,
                ages=ages,
                rotation_due=ages[self._primary] >= self._rotation_period,
                rotation_period=self._rotation_period,
            )

    def rotate(self) -> int:
        """A fresh random key becomes the primary version; returns its number."""
        with self._lock:
            version = max(self._meta) + 1
            keys = {**self._keys, version: os.urandom(KEY_BYTES)}
            meta = {**self._meta, version: KeyVersion(version, self._clock())}
            self._commit(keys, meta, version)
            return version

    def retire(self, version: int) -> None:
        """The version stops opening ciphertexts. Refuses the primary and unknown versions."""
        with self._lock:
            if version not in self._meta:
                raise KeyStoreError(f"key version {version} does not exist")
            if version == self._primary:
                raise KeyStoreError(f"key version {version} is the primary; rotate first")
            meta = {**self._meta, version: replace(self._meta[version], retired=True)}
            self._commit(self._keys, meta, self._primary)

    def destroy(self, version: int) -> None:
        """Removes a retired version's key bytes from the keyring file for good (its metadata stays): whatever was
        sealed under it can never be opened again, by this vault or by anyone holding an old copy of the config."""
        with self._lock:
            meta = self._meta.get(version)
            if meta is None:
                raise KeyStoreError(f"key version {version} does not exist")
            if not meta.retired:
                raise KeyStoreError(f"key version {version} is not retired; retire it (after a rewrap) first")
            keys = {v: k for v, k in self._keys.items() if v != version}
            self._commit(keys, {**self._meta, version: replace(meta, destroyed=True)}, self._primary)

    def __repr__(self) -> str:
        return f"KeyStore(versions={sorted(self._meta)}, primary={self._primary}, path={self._path})"

    def _commit(self, keys: dict[int, bytes], meta: dict[int, KeyVersion], primary: int) -> None:
        self._persist(keys, meta, primary)
        self._keys, self._meta, self._primary = keys, meta, primary
        self._keyring = self._build_keyring()  # one reference swap: in-flight calls keep the keyring they read

    def _build_keyring(self) -> Keyring:
        # A destroyed version is retired too (`destroy` refuses others) and has no bytes in `_keys` at all.
        return Keyring({v: k for v, k in self._keys.items() if not self._meta[v].retired}, self._primary)

    def _persist(self, keys: Mapping[int, bytes], meta: Mapping[int, KeyVersion], primary: int) -> None:
        document: dict[str, object] = {"format": FILE_FORMAT, "primary": primary}
        if self._audit_key is not None:
            document["audit_key"] = encode_key(self._audit_key)
        versions: dict[str, object] = {}
        for v in sorted(meta):
            entry: dict[str, object] = {"created_at": meta[v].created_at.isoformat(), "retired": meta[v].retired}
            if meta[v].destroyed:
                entry["destroyed"] = True  # and no key bytes, for good
            else:
                entry["key"] = encode_key(keys[v])
            versions[str(v)] = entry
        document["versions"] = versions
        private_dir(self._path.parent)
        atomic_replace(self._path, json.dumps(document, indent=1).encode("utf-8"))


def lock_keyring(path: Path) -> int:
    """Takes `<keyring>.lock` for the life of the process: one vault per keyring. Two vaults on one keyring would
    each rotate from their own in-memory copy and overwrite the other's versions. Returns the holding descriptor."""
    private_dir(path.parent)
    try:
        return hold_lock(path.with_name(path.name + ".lock"))
    except LockHeld as held:
        raise VaultConfigError(
            f"another vault process is already using VAULT_KEYRING_FILE {path} (it holds {held}); "
            "run one vault per keyring"
        ) from None


def _load(path: Path) -> tuple[dict[int, bytes], dict[int, KeyVersion], int, bytes | None]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise VaultConfigError(f"VAULT_KEYRING_FILE {path} must be readable by its owner only (chmod 600)")
    try:
        document = json.loads(path.read_bytes())
        if document.get("format") != FILE_FORMAT:
            raise VaultConfigError(f"VAULT_KEYRING_FILE {path} has an unknown format")
        primary = int(document["primary"])
        audit_key = document.get("audit_key")
        audit = None if audit_key is None else decode_key(str(audit_key), "VAULT_KEYRING_FILE audit_key")
        keys: dict[int, bytes] = {}
        meta: dict[int, KeyVersion] = {}
        for name, entry in document["versions"].items():
            version = int(name)
            created = datetime.fromisoformat(str(entry["created_at"]))
            if entry.get("destroyed") is True:
                meta[version] = KeyVersion(version, created, retired=True, destroyed=True)
                continue
            keys[version] = decode_key(str(entry["key"]), f"VAULT_KEYRING_FILE version {version}")
            meta[version] = KeyVersion(version, created, bool(entry["retired"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise VaultConfigError(f"VAULT_KEYRING_FILE {path} is not a valid keyring file") from None
    if primary not in meta or meta[primary].retired:
        raise VaultConfigError(f"VAULT_KEYRING_FILE {path}: the primary version must exist and not be retired")
    return keys, meta, primary, audit
