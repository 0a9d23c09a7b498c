"""The one thread per process that runs the domain's LockKeeper (src/tgm/domain/lane.py): the domain keeps the
schedule, the process owns the thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from tgm.domain.lane import LockKeeper

logger = logging.getLogger(__name__)


class LockKeeperThread:
    """Runs `keeper.run_once()` whenever a renewal is due, on one daemon thread, until `stop()`."""

    def __init__(self, keeper: LockKeeper, name: str = "lock-keeper") -> None:
        self._keeper = keeper
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def keeper(self) -> LockKeeper:
        return self._keeper

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._keeper.wake()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delay = self._keeper.run_once()
            except Exception:  # a bug in a renewal callback must not end every lock's renewals
                logger.exception("lock keeper round failed")
                delay = 1.0
            if self._stopping.is_set():
                return
            self._keeper.wait(delay)


def running_lock_keeper() -> Iterator[LockKeeperThread]:
    """A keeper on its thread, for a dependency-injector Resource: started on first use, stopped at shutdown. The
    drains take its `keeper`; the liveness probe asks whether the thread is `alive`."""
    runner = LockKeeperThread(LockKeeper())
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()
