"""Issue 9: the registry's gRPC health follows its database, and the watcher never dies on a probe error."""

from __future__ import annotations

import sqlalchemy as sa

from tgm.services.botregistry.database_health import DatabaseHealthWatcher, select_one


class FlakyProbe:
    def __init__(self) -> None:
        self.down = False

    def __call__(self) -> None:
        if self.down:
            raise ConnectionError("connection refused")


def test_health_is_reported_on_each_change_only() -> None:
    probe, reports = FlakyProbe(), []
    watcher = DatabaseHealthWatcher(probe, reports.append)
    assert watcher.check_once() and watcher.check_once()
    probe.down = True
    assert not watcher.check_once() and not watcher.check_once()
    probe.down = False
    assert watcher.check_once()
    assert reports == [True, False, True]


def test_the_probe_runs_a_query_on_the_pool() -> None:
    engine = sa.create_engine("sqlite://")
    assert select_one(engine)() == 1
    engine.dispose()
    broken = sa.create_engine("sqlite:////nonexistent-dir/for/sure/db.sqlite")
    reports: list[bool] = []
    assert not DatabaseHealthWatcher(select_one(broken), reports.append).check_once()
    assert reports == [False]
