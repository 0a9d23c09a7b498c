"""A throwaway PostgreSQL server for the contract and end-to-end tests and the benchmarks.

`running_postgres()` runs initdb in a fresh temp dir, starts the server on a free loopback port
(unix socket in the same temp dir), creates a non-superuser role and a database owned by it, yields
the connection details, and stops and removes everything afterwards. As root, the server binaries run
as the `postgres` user (PostgreSQL refuses to run as root). Binaries: `$PG_BIN` or
/usr/lib/postgresql/15/bin.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
SERVICE_USER = "postgres"
START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL binaries here (tests should skip, not fail)."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    database: str
    user: str
    password: str
    superuser_password: str
    data_dir: Path

    @property
    def url(self) -> str:
        """SQLAlchemy URL for the application role (not a superuser)."""
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def superuser_conninfo(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname=postgres user={SERVICE_USER} password={self.superuser_password}"
        )

    def fresh_database(self, name: str) -> str:
        """(Re)creates database `name`, empty and owned by the application role; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.superuser_conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


def pg_bin() -> Path:
    return Path(os.environ.get("PG_BIN", DEFAULT_PG_BIN))


def available() -> bool:
    bin_dir = pg_bin()
    return all((bin_dir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Runner:
    """Runs the server binaries, as the postgres user when we are root."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                entry = pwd.getpwnam(SERVICE_USER)
            except KeyError as error:
                raise PostgresUnavailable("running as root but there is no 'postgres' user") from error
            os.chown(workdir, entry.pw_uid, entry.pw_gid)
            self._uid, self._gid = entry.pw_uid, entry.pw_gid

    def own(self, path: Path) -> None:
        if self.as_root:
            os.chown(path, self._uid, self._gid)

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(pg_bin() / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        result = subprocess.run(command, cwd=self.workdir, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result


def _server_options(port: int, workdir: Path) -> str:
    return (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={workdir} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )


def stop_server(server: PostgresServer) -> None:
    """Fault injection: a fast shutdown (clients are disconnected); `start_server` brings it back on the same port."""
    _Runner(server.data_dir.parent).run("pg_ctl", "-D", str(server.data_dir), "-m", "fast", "-w", "-t", "60", "stop")


def start_server(server: PostgresServer) -> None:
    workdir = server.data_dir.parent
    options = _server_options(server.port, workdir)
    log_file = str(workdir / "server.log")
    _Runner(workdir).run("pg_ctl", "-D", str(server.data_dir), "-l", log_file, "-o", options, "-w", "-t", "60", "start")


@contextmanager
def running_postgres(database: str = "tgm", user: str = "tgm") -> Iterator[PostgresServer]:
    if not available():
        raise PostgresUnavailable(f"no PostgreSQL binaries in {pg_bin()} (set PG_BIN)")
    import psycopg

    workdir = Path(tempfile.mkdtemp(prefix="tgm-pg-"))
    data_dir = workdir / "data"
    log_file = workdir / "server.log"
    started = False
    runner: _Runner | None = None
    try:
        runner = _Runner(workdir)
        superuser_password = secrets.token_urlsafe(16)
        password = secrets.token_urlsafe(16)
        pwfile = workdir / "pwfile"
        pwfile.write_text(superuser_password + "\n")
        pwfile.chmod(0o600)
        runner.own(pwfile)
        runner.run(
            "initdb",
            "-D",
            str(data_dir),
            "-U",
            SERVICE_USER,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()

        port = 0
        last_error: Exception | None = None
        for _ in range(START_ATTEMPTS):  # the free port may be taken between probe and bind
            port = _free_port()
            options = _server_options(port, workdir)
            try:
                runner.run("pg_ctl", "-D", str(data_dir), "-l", str(log_file), "-o", options, "-w", "-t", "60", "start")
                started = True
                break
            except RuntimeError as error:
                last_error = error
        if not started:
            log = log_file.read_text() if log_file.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{log[-2000:]}")

        server = PostgresServer(
            host="127.0.0.1",
            port=port,
            database=database,
            user=user,
            password=password,
            superuser_password=superuser_password,
            data_dir=data_dir,
        )
        with psycopg.connect(server.superuser_conninfo, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    psycopg.sql.Identifier(user), psycopg.sql.Literal(password)
                )
            )
            conn.execute(
                psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    psycopg.sql.Identifier(database), psycopg.sql.Identifier(user)
                )
            )
        yield server
    finally:
        if started and runner is not None:
            with suppress(RuntimeError):
                runner.run("pg_ctl", "-D", str(data_dir), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(workdir, ignore_errors=True)
