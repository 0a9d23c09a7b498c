"""Files a process keeps to itself: private folders, atomic replacement, a lock held for the process's life."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path


class LockHeld(Exception):
    """Another process holds the lock."""


def private_dir(path: Path) -> Path:
    """Creates `path` (and parents) readable by its owner only; returns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode applies only to a folder it creates: an existing one (made by a volume mount, an image layer or
    # an operator's `mkdir`) is tightened too, so what it holds never sits in a folder others can list or write.
    path.chmod(0o700)
    return path


def atomic_replace(path: Path, data: bytes, durable: bool = True) -> None:
    """Replaces `path` with `data` (temp file 0600 in the same folder + rename): a crash leaves the old or the new
    file, never half of one. `durable` also fsyncs the file and the folder before returning."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600, unique name
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def hold_lock(path: Path) -> int:
    """Takes `path` (flock, exclusive, non-blocking; created 0600) and returns the descriptor that holds it until
    it is closed or the process exits. Raises LockHeld when another open file description holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise LockHeld(str(path)) from None
    return fd


def write_all(fd: int, data: bytes, durable: bool = True) -> None:
    """Writes all of `data` at `fd` (os.write may write less than asked: the rest follows), then fsyncs `fd` when
    `durable`. An OSError leaves an unknown part of `data` written."""
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    if durable:
        os.fsync(fd)


def has_content(path: Path) -> bool:
    """Whether `path` exists and is not empty."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False
