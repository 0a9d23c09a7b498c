"""Runs the registry's Alembic migrations from code; works from any cwd (script_location is in the package)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import pool

from services.botregistry.adapters.sql import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(db_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if db_url is not None:
        # Passed as an attribute, not a main option: ConfigParser would choke on '%' in passwords.
        config.attributes["url"] = db_url
    return config


def upgrade(db_url: str, revision: str = "head") -> None:
    """Brings the database at `db_url` to `revision`, in one transaction where the backend allows."""
    engine = make_engine(db_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            config = alembic_config(db_url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def downgrade(db_url: str, revision: str) -> None:
    engine = make_engine(db_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            config = alembic_config(db_url)
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()
