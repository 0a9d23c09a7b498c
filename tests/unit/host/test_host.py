"""src/tgm/host: what the vault, the registry, the dispatcher and devstack share about files, locks and signals."""

from __future__ import annotations

import logging
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tgm.host.files import LockHeld, atomic_replace, hold_lock, private_dir
from tgm.host.signals import stop_event_on_signals


def test_atomic_replace_leaves_the_old_file_and_no_temp_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_replace(path, b"old")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def failing_replace(src: str, dst: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_replace(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_held_lock_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "data")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    held = hold_lock(folder / "x.lock")
    with pytest.raises(LockHeld):
        hold_lock(folder / "x.lock")  # flock: a second open file description conflicts even in one process
    os.close(held)
    os.close(hold_lock(folder / "x.lock"))


@pytest.fixture
def restore_signal_handlers() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("restore_signal_handlers")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_set_the_stop_event_and_are_logged(
    signum: signal.Signals, caplog: pytest.LogCaptureFixture
) -> None:
    stop = stop_event_on_signals(logging.getLogger("test.host"), "service stopping")
    assert not stop.is_set()
    with caplog.at_level(logging.INFO, logger="test.host"):
        signal.raise_signal(signum)  # delivered to this (main) thread before raise_signal returns
    assert stop.is_set()
    assert [(r.getMessage(), getattr(r, "signal", None)) for r in caplog.records] == [("service stopping", signum.name)]
