"""deploy/postgres/initdb/10-tgm-roles.sh on a real PostgreSQL: the migrator migrates, the application role the
registry serves with reads and writes rows but changes no schema, and neither is a superuser."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from testbed.postgres import SERVICE_USER, PostgresServer
from tests.contract.test_registry_sql import make_bot
from tgm.domain.events import Event, EventFilter, EventKind, Outcome
from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.sql import SqlBotRepository, SqlEventTrail, make_engine, make_session_factory

pytestmark = pytest.mark.postgres

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "initdb" / "10-tgm-roles.sh"


def _run_script(server: PostgresServer, database: str, passwords: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PGHOST=server.host,
        PGPORT=str(server.port),
        PGPASSWORD=server.superuser_password,
        POSTGRES_USER=SERVICE_USER,
        POSTGRES_DB=database,
        **passwords,
    )
    done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert not set(passwords.values()) & set((done.stdout + done.stderr).split())


def test_the_application_role_serves_but_cannot_change_the_schema(postgres_server: PostgresServer) -> None:
    assert shutil.which("psql"), "psql not found: run scripts/install-system-deps.sh"
    database = "tgm_roles"
    with psycopg.connect(postgres_server.superuser_conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')  # as the postgres image does: owned by the superuser
    passwords = {name: secrets.token_urlsafe(16) for name in ("TGM_DB_MIGRATOR_PASSWORD", "TGM_DB_APP_PASSWORD")}
    _run_script(postgres_server, database, passwords)
    _run_script(postgres_server, database, passwords)  # again: idempotent (a managed database's admin may rerun it)

    base = f"{postgres_server.host}:{postgres_server.port}/{database}"
    migrator_url = f"postgresql+psycopg://tgm_migrator:{passwords['TGM_DB_MIGRATOR_PASSWORD']}@{base}"
    app_url = f"postgresql+psycopg://tgm_app:{passwords['TGM_DB_APP_PASSWORD']}@{base}"
    migrate.upgrade(migrator_url)
    migrate.upgrade(app_url)  # what `serve` does at start: at head, a read of alembic_version only

    engine = make_engine(app_url, pool_size=1, max_overflow=0)
    try:
        bots = SqlBotRepository(make_session_factory(engine))
        bot = make_bot()
        bots.add(bot)
        stored = bots.get(bot.id)
        assert stored is not None and stored.public_id == bot.public_id
        # The event trail's id comes from a sequence: the application role needs it too (default privileges).
        trail = SqlEventTrail(make_session_factory(engine))
        trail.record(Event(datetime.now(UTC), EventKind.BOT_ADDED, "operator", bot.id, Outcome.DONE))
        assert [event.bot_id for event in trail.recent(EventFilter())] == [bot.id]
        assert trail.purge_older_than(datetime.now(UTC) + timedelta(days=1)) == 1
    finally:
        engine.dispose()

    app_conninfo = f"host={postgres_server.host} port={postgres_server.port} dbname={database} user=tgm_app"
    with psycopg.connect(app_conninfo, password=passwords["TGM_DB_APP_PASSWORD"], autocommit=True) as conn:
        for statement in (
            "CREATE TABLE intruder (id int)",
            "CREATE TEMP TABLE intruder (id int)",
            "DROP TABLE bots",
            "ALTER TABLE bots ADD COLUMN intruder int",
            "TRUNCATE bots",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(postgres_server.superuser_conninfo) as conn:
        flags = conn.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname LIKE 'tgm\\_%' "
            "ORDER BY rolname"
        ).fetchall()
        assert flags == [("tgm_app", False, False, False), ("tgm_migrator", False, False, False)]
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        assert owner == ("tgm_migrator",)
