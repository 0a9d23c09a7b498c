"""What `make run` checks before it starts anything, so that each problem is one line naming its fix (issue 13):
Python too old, the gateway's port taken, a second `make run` on the same data directory, a `.run/` written by
another version of tgm."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import IO

MIN_PYTHON = (3, 11)
# Bumped when `.run/` changes in a way an older or newer tgm cannot read (keyring, database, certificates).
RUN_DIR_FORMAT = "1"


class PreflightError(Exception):
    """A reason `make run` cannot start, worded as what to do about it."""


def check_python(version: tuple[int, ...] = sys.version_info[:3]) -> None:
    if version[:2] < MIN_PYTHON:
        found = ".".join(str(part) for part in version[:3])
        raise PreflightError(
            f"tgm needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer, found {found}: "
            "install it and run `make clean run PYTHON=python3.11`"
        )


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Refuses a fixed port something else listens on (0 means "any free port": nothing to check)."""
    if port <= 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise PreflightError(
                f"GATEWAY_PORT {port} is in use: stop what listens there (`ss -ltnp 'sport = :{port}'` shows it) "
                "or choose another GATEWAY_PORT"
            ) from None


def hold_run_dir(run_dir: Path) -> IO[str]:
    """Locks `run_dir` for this process (released when it exits); refuses a second `make run` on it."""
    handle = open(run_dir / "make-run.lock", "a+")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise PreflightError(
            f"another `make run` (pid {holder}) is using {run_dir}: stop it (Ctrl-C in its terminal) "
            "or start this one with another data directory (`python -m tgm.tools.devstack --run-dir DIR`)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def check_run_dir_format(run_dir: Path) -> None:
    """Stamps a new `run_dir` with this version's format; refuses one written in another format."""
    stamp = run_dir / "FORMAT"
    if not stamp.exists():
        stamp.write_text(RUN_DIR_FORMAT + "\n")
        return
    found = stamp.read_text().strip()
    if found != RUN_DIR_FORMAT:
        raise PreflightError(
            f"{run_dir} was written by another version of tgm (data format {found}, this one reads "
            f"{RUN_DIR_FORMAT}): move it away, or `make clean` to start afresh (its bots and keys are lost)"
        )
