"""The registry's migrated databases, shared by the SQL contract tests: real PostgreSQL (once per module) and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tgm.services.botregistry import migrate
from tgm.services.botregistry.adapters.sql import make_engine


@pytest.fixture(scope="module")
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url, pool_size=4, max_overflow=4)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    url = f"sqlite:///{tmp_path}/registry.db"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
