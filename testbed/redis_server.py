"""A throwaway redis-server for the tests and the benchmarks: free ports, temp dir, stopped afterwards.

The session fixture `redis_server` lives in tests/conftest.py. It runs as a deployment does (SECURITY.md finding 5):
`default` needs its password, each service has its own least-privilege user (src/tgm/messaging/redis_acl.py) and
reaches Redis over TLS (`service_url`), so the Redis-mode stacks of the end-to-end tests prove the ACL rules are
enough. Test code itself inspects and flushes Redis as the all-powerful `default` user on the plain port (`url`).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

import redis
from cryptography.hazmat.primitives import serialization

from tgm.messaging.redis_acl import SERVICE_RULES, server_arguments
from tgm.tools.devstack.certs import Identity, issue, make_ca

REDIS_BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"
ADMIN_USER = "default"  # password-protected; src/tgm/messaging/redis_acl.py says why it stays on
STACK_USERS = ("gateway", "dispatcher")


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    tls_port: int = 0
    tls_ca_file: str = ""
    passwords: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        """The tests' own connection: plain port, the admin user when the server has users."""
        if ADMIN_USER not in self.passwords:
            return f"redis://{self.host}:{self.port}/0"
        return f"redis://{ADMIN_USER}:{quote(self.passwords[ADMIN_USER])}@{self.host}:{self.port}/0"

    def service_url(self, user: str) -> str:
        """What a service's REDIS_URL is in a deployment: its own user, TLS, the server's CA checked."""
        credentials = f"{user}:{quote(self.passwords[user])}"
        if not self.tls_port:  # a server without TLS (the restartable one): loopback only
            return f"redis://{credentials}@{self.host}:{self.port}/0"
        query = urlencode({"ssl_ca_certs": self.tls_ca_file})
        return f"rediss://{credentials}@{self.host}:{self.tls_port}/0?{query}"

    def stack_config(self) -> dict[str, Any]:
        """StackConfig fields for a Redis-mode stack whose gateway and dispatchers each use their own user over TLS."""
        if ADMIN_USER not in self.passwords:
            return {"redis_url": self.url}
        return {"redis_url": self.url, "redis_urls": {name: self.service_url(name) for name in STACK_USERS}}

    def take_acl_denials(self) -> list[str]:
        """Every command Redis refused a user since the last call, as "user: command/key", and clears the log."""
        client = redis.Redis.from_url(self.url)
        try:
            entries = cast(list[dict[str, Any]], client.acl_log())  # sync reply, typed as maybe-Awaitable
            client.acl_log_reset()
        finally:
            client.close()
        return [f"{entry['username']}: {entry['reason']} {entry['object']}" for entry in entries]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up; NOAUTH: `default` has a password
    except OSError:
        return False


def _tls_files(workdir: str) -> tuple[Path, Path, Path]:
    """(CA, certificate, key) for a Redis named `redis` that is reached on 127.0.0.1."""
    ca = make_ca("tgm test Redis CA")
    cert_pem, key_pem = issue(ca, Identity("redis", server=True, client=False, dns=("redis",), ips=("127.0.0.1",)))
    folder = Path(workdir)
    paths = folder / "ca.pem", folder / "redis.pem", folder / "redis.key"
    paths[0].write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert_pem)
    paths[2].write_bytes(key_pem)
    paths[2].chmod(0o600)
    return paths


def _users() -> tuple[dict[str, str], list[str]]:
    """Fresh passwords for every service user and the tests' admin, and the redis-server arguments creating them."""
    passwords = {name: secrets.token_urlsafe(24) for name in SERVICE_RULES}
    arguments = server_arguments(admin_password := secrets.token_urlsafe(24), passwords)
    return {**passwords, ADMIN_USER: admin_password}, arguments


def start_redis(
    timeout_seconds: float = 10.0, secured: bool = True
) -> tuple[RedisServer, subprocess.Popen[bytes], str]:
    """A redis-server on a free port. `secured`: ACL users (admin + one per service) and a TLS port as well."""
    workdir = tempfile.mkdtemp(prefix="tgm-redis-")
    port = _free_port()
    arguments = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    arguments += ["--daemonize", "no", "--dir", workdir]
    server = RedisServer("127.0.0.1", port)
    if secured:
        passwords, acl_arguments = _users()
        ca_file, cert_file, key_file = _tls_files(workdir)
        tls_port = _free_port()
        arguments += ["--tls-port", str(tls_port), "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file)]
        arguments += ["--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "optional", *acl_arguments]
        server = RedisServer("127.0.0.1", port, tls_port, str(ca_file), passwords)
    process = subprocess.Popen(
        [REDIS_BINARY, *arguments], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            shutil.rmtree(workdir, ignore_errors=True)
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        if _answers_ping(port):
            return server, process, workdir
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
        passwords, self._acl_arguments = _users()
        self.server = RedisServer("127.0.0.1", _free_port(), passwords=passwords)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, timeout_seconds: float = 10.0) -> None:
        args = ["--port", str(self.server.port), "--bind", "127.0.0.1", "--dir", self.workdir]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"]
        args += self._acl_arguments
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
