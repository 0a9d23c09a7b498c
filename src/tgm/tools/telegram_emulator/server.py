"""Running the emulator: in a background thread (tests) or as the main program."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import uvicorn

from tgm.tools.telegram_emulator.app import create_app


def uvicorn_config(app: Any, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    # No access log: request lines carry the bot token in the path. The app logs its own masked line.
    # uvloop and httptools: the emulator carries benchmark load (thousands of webhook deliveries and sends per second).
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level=log_level,
        lifespan="on",
        loop="uvloop",
        http="httptools",
        # The chat page's event streams stay open: on stop, give requests this long, then cancel them.
        timeout_graceful_shutdown=2,
    )


class EmulatorServer:
    """An emulator on a free loopback port, served by uvicorn in a daemon thread.

    with EmulatorServer(retry_max_delay=8) as server:
        server.base_url  # "http://127.0.0.1:PORT"
    """

    def __init__(self, host: str = "127.0.0.1", **app_options: Any) -> None:
        self.host = host
        self.app = create_app(**app_options)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.port: int = self._socket.getsockname()[1]
        self._server = uvicorn.Server(uvicorn_config(self.app, host, self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._serve, name="telegram-emulator", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _serve(self) -> None:
        self._server.run(
            sockets=[self._socket]
        )  # on the config's loop (uvloop); no signal handlers off the main thread

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("telegram emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._socket.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
