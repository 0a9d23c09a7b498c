"""Session-wide real servers: one throwaway PostgreSQL 15 and one Redis 7, on free loopback ports.

`make test` installs both from Debian packages when missing, so their absence is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from testbed.postgres import PostgresServer, available, running_postgres
from testbed.redis_server import REDIS_BINARY, RedisServer, start_redis, stop_redis

# In-process tests build gRPC servers and channels on loopback without certificates: the explicit development flag
# allows that here. Service processes started by the devstack get only their own environment (no flag, their TLS
# files), so they run fail-closed; tests/security/test_fail_closed.py checks the refusal itself.
os.environ.setdefault("TGM_INSECURE_DEV", "1")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if not available():
        pytest.fail("PostgreSQL server binaries not found: run scripts/install-system-deps.sh (or set PG_BIN)")
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL (postgresql+psycopg://) of a database owned by a non-superuser role."""
    return postgres_server.url


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A new, empty database owned by the application role, for tests that need a clean schema."""
    name = "tgm_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return postgres_server.fresh_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    import shutil

    if not shutil.which(REDIS_BINARY):
        pytest.fail("redis-server not found: run scripts/install-system-deps.sh")
    server, process, workdir = start_redis()
    try:
        yield server
        # The Redis-mode stacks run each service as its own ACL user: a command its rules do not allow is a failure.
        denied = server.take_acl_denials()
        if denied:
            pytest.fail(f"Redis refused tgm's services (src/tgm/messaging/redis_acl.py): {denied}")
    finally:
        stop_redis(process, workdir)
