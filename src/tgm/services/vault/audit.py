"""The append-only, keyed hash-chained audit log: one canonical JSON line per vault call, never a secret.

Chain, anchors (a cut tail leaves a valid shorter chain) and durability: README.md, "Audit log".
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tgm.host.files import atomic_replace, write_all

GENESIS = "0" * 64
CHAIN = "hmac-sha256"
_ANCHOR_LABEL = "tgm-vault-audit-anchor"
_BROKEN_LINK = "does not follow the previous line (a line was removed or reordered)"
# Lines from before the chain was keyed (plain SHA-256, never released) are not read: such a log stops the vault.
UNKEYED_LOG = "is not keyed: a log from before keyed audit chains is not read; archive it and start a new log"
KEY_LOST = "is keyed, but the keyring has no audit key: restore the keyring that wrote it (do not archive the log)"


def without_key(path: Path) -> str:
    """Why a log with lines is unreadable with no audit key: it predates keyed chains, or the keyring lost its key."""
    with path.open("rb") as handle:
        return KEY_LOST if f'"chain":"{CHAIN}"'.encode() in handle.readline() else UNKEYED_LOG


_FIELDS = ("caller", "verb", "bot", "kind", "purpose", "key_version", "new_key_version", "outcome", "request_id")


def _canonical(entry: Mapping[str, object]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def chain_hash(prev_hash: str, entry_without_hash: Mapping[str, object], key: bytes) -> str:
    """HMAC-SHA256 under the audit key of the previous hash and the canonical line."""
    return hmac.new(key, (prev_hash + _canonical(entry_without_hash)).encode("utf-8"), "sha256").hexdigest()


@dataclass(frozen=True)
class Anchor:
    """A line's position and hash: enough to prove later that the log still contains that line."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        seq, _, digest = text.partition(":")
        if not (seq.isdecimal() and int(seq) > 0 and len(digest) == 64):
            raise ValueError("an anchor is SEQ:HASH, e.g. 42:3fa2…(64 hex digits)")
        return cls(int(seq), digest)


GENESIS_ANCHOR = Anchor(0, GENESIS)


class AuditLogBroken(RuntimeError):
    """A line could not be written durably: the log refuses every further append (and so the vault every call)."""


class AuditLogTampered(ValueError):
    """At start: the log does not verify, or does not hold what its anchor says it held; the vault refuses to
    start (restore the log and its anchor from backup, or investigate)."""


def _anchor_mac(key: bytes, anchor: Anchor) -> str:
    return hmac.new(key, f"{_ANCHOR_LABEL}:{anchor.seq}:{anchor.hash}".encode(), "sha256").hexdigest()


def write_anchor(path: Path, anchor: Anchor, key: bytes, fsync: bool = True) -> None:
    """Replaces the anchor file atomically (a crash leaves the old or the new anchor, both valid)."""
    data = json.dumps({"seq": anchor.seq, "hash": anchor.hash, "mac": _anchor_mac(key, anchor)}).encode()
    atomic_replace(path, data, durable=fsync)


def read_anchor(path: Path, key: bytes) -> Anchor | None:
    """The anchor in `path` (None when there is no file); raises AuditLogTampered when it is not one the vault
    wrote under this key."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        document = json.loads(raw)
        anchor = Anchor(int(document["seq"]), str(document["hash"]))
        tag = str(document["mac"])
    except (ValueError, KeyError, TypeError):
        raise AuditLogTampered(f"the audit anchor {path} is not valid") from None
    if not hmac.compare_digest(tag, _anchor_mac(key, anchor)):
        raise AuditLogTampered(f"the audit anchor {path} was not written by this vault (its tag does not verify)")
    return anchor


class AuditLog:
    """Appends lines chained under `key` to `path`, each followed by its anchor in `anchor_path`; thread-safe within
    one process (the vault is the only writer). At start the whole log is verified against the anchor, which may be
    missing only when `anchor_may_be_missing` (a new audit key). After a failed write every append raises
    `AuditLogBroken` (fail closed)."""

    def __init__(
        self,
        path: Path,
        fsync: bool = True,
        clock: Callable[[], datetime] | None = None,
        *,
        key: bytes,
        anchor_path: Path,
        anchor_may_be_missing: bool = False,
    ) -> None:
        self._path = path
        self._fsync = fsync
        self._clock = clock or (lambda: datetime.now(UTC))
        self._key = key
        self._anchor_path = anchor_path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._head = _verified_head(path, key, anchor_path, anchor_may_be_missing)
        write_anchor(anchor_path, self._head, key, fsync)  # a missing anchor is written now
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._broken: str | None = None

    @property
    def head(self) -> Anchor:
        """The last line written (seq 0 and 64 zeros for an empty log)."""
        return self._head

    @property
    def broken(self) -> str | None:
        """Why the log refuses appends (None while it works)."""
        return self._broken

    def append(self, record: Mapping[str, object]) -> Anchor:
        entry: dict[str, object] = {name: record.get(name) for name in _FIELDS}
        with self._lock:
            if self._broken is not None:
                raise AuditLogBroken(f"the audit log is broken ({self._broken}); restart the vault once it is fixed")
            seq = self._head.seq + 1
            entry["seq"] = seq
            entry["time"] = self._clock().isoformat(timespec="microseconds")
            entry["prev_hash"] = self._head.hash
            entry["chain"] = CHAIN
            digest = chain_hash(self._head.hash, entry, self._key)
            entry["hash"] = digest
            data = (_canonical(entry) + "\n").encode("utf-8")
            try:
                write_all(self._fd, data, durable=self._fsync)  # the whole line, short writes completed
                write_anchor(self._anchor_path, Anchor(seq, digest), self._key, self._fsync)
            except OSError as exc:
                # The line may be partly (or wholly but not durably) on disk: never append after it in this run.
                self._broken = f"{type(exc).__name__}: {exc.strerror or exc}"
                raise AuditLogBroken(f"audit write failed: {self._broken}") from None
            self._head = Anchor(seq, digest)
            return self._head

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


def _verified_head(path: Path, key: bytes, anchor_path: Path, anchor_may_be_missing: bool) -> Anchor:
    """The head of a log that verifies in full under `key` and holds its anchored line; else AuditLogTampered."""
    anchor = read_anchor(anchor_path, key)
    if anchor is None and not anchor_may_be_missing:
        raise AuditLogTampered(
            f"the audit anchor {anchor_path} is missing: the log cannot be checked for a cut tail or a replacement "
            "(restore it with the log from backup)"
        )
    if not path.exists():
        if anchor is not None and anchor.seq > 0:
            raise AuditLogTampered(f"the audit log {path} is missing but its anchor holds line {anchor.seq}")
        return GENESIS_ANCHOR
    verdict = verify(path, anchor, key=key)
    if not verdict.ok:
        raise AuditLogTampered(
            f"the audit log {path} does not verify at line {verdict.bad_line}: {verdict.reason}; run `audit verify`"
        )
    return Anchor(verdict.lines, verdict.head)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: int
    head: str
    bad_line: int | None = None
    reason: str = ""


def verify(path: Path, anchor: Anchor | None = None, *, key: bytes) -> Verdict:
    """Walks the chain under the audit key; names the first line (1-based) that was edited, is not keyed, or follows
    a removed/reordered one. With `anchor` (the anchor file's, or the last seq:hash the vault logged), also fails
    when the file no longer holds that line — the tail was cut, or the log was rewritten from that point on.
    """
    expected = GENESIS
    count = 0
    anchored = anchor is None
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            count = number
            try:
                entry = json.loads(raw)
                claimed = entry.pop("hash")
            except (ValueError, KeyError, TypeError, AttributeError):
                return Verdict(False, count, expected, number, "not a valid audit line")
            if entry.get("prev_hash") != expected or entry.get("seq") != number:
                return Verdict(False, count, expected, number, _BROKEN_LINK)
            if entry.get("chain") != CHAIN:
                reason = UNKEYED_LOG if number == 1 else "is not keyed but follows keyed lines (downgrade)"
                return Verdict(False, count, expected, number, reason)
            if not hmac.compare_digest(chain_hash(expected, entry, key), str(claimed)):
                return Verdict(False, count, expected, number, "hash does not match its content (edited)")
            expected = str(claimed)
            if anchor is not None and number == anchor.seq:
                if claimed != anchor.hash:
                    return Verdict(False, count, expected, number, "is not the anchored line (log rewritten)")
                anchored = True
    if not anchored:
        assert anchor is not None
        reason = f"the log ends at line {count} but line {anchor.seq} was anchored (tail cut)"
        return Verdict(False, count, expected, count + 1, reason)
    return Verdict(True, count, expected)
