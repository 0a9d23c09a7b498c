"""`make run`'s checks before it starts anything: each problem is one clear line naming its fix."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tgm.tools.devstack.preflight import (
    RUN_DIR_FORMAT,
    PreflightError,
    check_port_free,
    check_python,
    check_run_dir_format,
    hold_run_dir,
)


def test_python_older_than_3_11_is_refused_with_the_fix() -> None:
    with pytest.raises(PreflightError, match=r"Python 3\.11 or newer, found 3\.10\.4.*PYTHON=python3\.11"):
        check_python((3, 10, 4))
    check_python((3, 11, 0))
    check_python((3, 13, 1))


def test_a_taken_gateway_port_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PreflightError, match=rf"GATEWAY_PORT {port} is in use"):
            check_port_free(port)
    check_port_free(0)  # any free port: nothing to check


def test_a_second_make_run_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    # The lock is held by another process (flock locks belong to the open file, so a child process holds it).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from tgm.tools.devstack.preflight import hold_run_dir
                lock = hold_run_dir(Path({str(tmp_path)!r}))
                print("held", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(PreflightError, match=rf"another `make run` \(pid {holder.pid}\) is using"):
            hold_run_dir(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    hold_run_dir(tmp_path).close()  # free again once the other one is gone


def test_a_run_directory_of_another_format_is_refused_and_a_new_one_is_stamped(tmp_path: Path) -> None:
    check_run_dir_format(tmp_path)
    assert (tmp_path / "FORMAT").read_text().strip() == RUN_DIR_FORMAT
    check_run_dir_format(tmp_path)  # the same format: fine
    (tmp_path / "FORMAT").write_text("0\n")
    with pytest.raises(PreflightError, match=r"another version of tgm \(data format 0.*make clean"):
        check_run_dir_format(tmp_path)
