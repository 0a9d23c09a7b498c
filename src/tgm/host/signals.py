"""Stopping a long-running service on SIGTERM (its supervisor) or SIGINT (Ctrl-C)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType


def stop_event_on_signals(logger: logging.Logger, message: str = "stopping") -> threading.Event:
    """An event that SIGTERM and SIGINT set (each logged with the signal's name): the main thread waits on it, then
    shuts down in order. Call it from the main thread (Python delivers signals there only)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info(message, extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
