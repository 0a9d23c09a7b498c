"""The append-only, hash-chained audit log: one JSON line per vault call.

Each line is canonical JSON (sorted keys, no spaces) with ``seq`` (1, 2, 3, … — the line number), ``prev_hash``
(the previous line's ``hash``; 64 zeros for the first line) and ``hash = sha256(prev_hash + canonical JSON of the
line without "hash")``. Editing a line breaks its hash; deleting or reordering lines breaks the next line's
``prev_hash`` (and ``seq``). Cutting the *tail* leaves a valid shorter chain, so the file alone cannot show it:
every append also returns its `Anchor` (seq, hash), which the servicer writes to the vault's stderr JSON log — a
stream that leaves the host. `verify(path, anchor=…)` then checks the file still holds that anchored line; without
an anchor it reports the head (seq, hash) for comparison with the last anchor logged (see SECURITY.md).

Durability: each line is written with one ``write`` on an O_APPEND descriptor and, by default
(``VAULT_AUDIT_FSYNC=true``), fsynced before the call returns — a call that returned was recorded.
Lines hold identities, verbs, bot refs, kinds, purposes, key versions, outcomes and request ids: never plaintext,
ciphertext or keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

GENESIS = "0" * 64
_BROKEN_LINK = "does not follow the previous line (a line was removed or reordered)"
_FIELDS = ("caller", "verb", "bot", "kind", "purpose", "key_version", "new_key_version", "outcome", "request_id")


def _canonical(entry: Mapping[str, object]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def chain_hash(prev_hash: str, entry_without_hash: Mapping[str, object]) -> str:
    return hashlib.sha256((prev_hash + _canonical(entry_without_hash)).encode("utf-8")).hexdigest()


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


class AuditLog:
    """Appends chained lines to `path`; thread-safe within one process (the vault is the only writer).

    Fail closed, as HashiCorp Vault does: if a write or fsync fails, the log is broken from then on and every
    append raises `AuditLogBroken` (the vault then refuses the call), so no call goes unrecorded and no sequence
    number is written twice; a restart resumes from what the file really holds. Short writes are completed.
    """

    def __init__(self, path: Path, fsync: bool = True, clock: Callable[[], datetime] | None = None) -> None:
        self._path = path
        self._fsync = fsync
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._head = _last_anchor(path)
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
            digest = chain_hash(self._head.hash, entry)
            entry["hash"] = digest
            data = (_canonical(entry) + "\n").encode("utf-8")
            try:
                written = 0
                while written < len(data):  # os.write may write less than asked: finish the line
                    written += os.write(self._fd, data[written:])
                if self._fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                # The line may be partly (or wholly but not durably) on disk: never append after it in this run.
                self._broken = f"{type(exc).__name__}: {exc.strerror or exc}"
                raise AuditLogBroken(f"audit write failed: {self._broken}") from None
            self._head = Anchor(seq, digest)
            return self._head

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


def _last_anchor(path: Path) -> Anchor:
    """The head of an existing log: seq and hash of its last line (GENESIS_ANCHOR for an empty file)."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        step = 4096
        while True:
            start = max(0, size - step)
            handle.seek(start)
            lines = handle.read().splitlines()
            if len(lines) > 1 or start == 0:
                break
            step *= 2
    if not lines:
        return GENESIS_ANCHOR
    try:
        last = json.loads(lines[-1])
        return Anchor(int(last["seq"]), str(last["hash"]))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"the audit log {path} does not end with a valid line; run `audit verify`") from None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: int
    head: str
    bad_line: int | None = None
    reason: str = ""


def verify(path: Path, anchor: Anchor | None = None) -> Verdict:
    """Walks the chain; names the first line (1-based) that was edited, or follows a removed/reordered one.

    With `anchor` (the last seq:hash the vault logged), also fails when the file no longer holds that line —
    the tail was cut, or the log was rewritten from that point on.
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
            if chain_hash(expected, entry) != claimed:
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
