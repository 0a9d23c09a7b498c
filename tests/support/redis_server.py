"""A throwaway redis-server for contract tests: free port, temp dir, stopped afterwards.

The session fixture `redis_server` lives in tests/conftest.py.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

REDIS_BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(timeout_seconds: float = 10.0) -> tuple[RedisServer, subprocess.Popen[bytes], str]:
    workdir = tempfile.mkdtemp(prefix="tgm-redis-")
    port = _free_port()
    process = subprocess.Popen(
        [
            REDIS_BINARY,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            workdir,
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            shutil.rmtree(workdir, ignore_errors=True)
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        if _answers_ping(port):
            return RedisServer("127.0.0.1", port), process, workdir
        time.sleep(0.05)
    stop_redis(process, workdir)
    raise RuntimeError("redis-server did not answer PING in time")


def stop_redis(process: subprocess.Popen[bytes], workdir: str) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)
