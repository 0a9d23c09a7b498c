"""Runs the registry's Alembic migrations from code; works from any cwd (script_location is in the package)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, pool

from tgm.services.botregistry.adapters.sql import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(db_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if db_url is not None:
        # Passed as an attribute, not a main option: ConfigParser would choke on '%' in passwords.
        config.attributes["url"] = db_url
    return config


@contextmanager
def _migrating(db_url: str) -> Iterator[Connection]:
    """A connection in one transaction. On SQLite without foreign-key enforcement while migrating: a batch
    migration rebuilds a table (copy, DROP, rename), and with enforcement on, the DROP of `bots` cascaded to every
    bot's users and stats. The keys are checked after the migration instead (a violation aborts it)."""
    engine = make_engine(db_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # only outside a transaction
                connection.commit()
            with connection.begin():
                yield connection
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("the migration left rows that break a foreign key; rolled back")
    finally:
        engine.dispose()


def upgrade(db_url: str, revision: str = "head") -> None:
    """Brings the database at `db_url` to `revision`, in one transaction where the backend allows."""
    with _migrating(db_url) as connection:
        config = alembic_config(db_url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(db_url: str, revision: str) -> None:
    with _migrating(db_url) as connection:
        config = alembic_config(db_url)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
