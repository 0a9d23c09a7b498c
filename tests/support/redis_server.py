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


class RestartableRedis:
    """A redis-server with AOF on (as the project's deployment runs it) that a fault test can stop and start again
    on the same port and data directory."""

    def __init__(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="tgm-redis-aof-")
        self.server = RedisServer("127.0.0.1", _free_port())
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, timeout_seconds: float = 10.0) -> None:
        args = ["--port", str(self.server.port), "--bind", "127.0.0.1", "--dir", self.workdir]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"]
        self._process = subprocess.Popen(
            [REDIS_BINARY, *args], cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if _answers_ping(self.server.port):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING in time")

    def stop(self) -> None:
        """SIGTERM: Redis writes its AOF out and exits (a graceful restart loses nothing)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
