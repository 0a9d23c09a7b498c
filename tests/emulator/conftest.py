"""The emulator on a free loopback port in a thread, plus a webhook receiver the tests can script."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tgm.tools.telegram_emulator import EmulatorServer

USER = {"id": 700001, "first_name": "Ana", "username": "ana", "language_code": "pt-br"}


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Polls until `predicate()` is truthy; returns its value or fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    started: float
    finished: float = 0.0
    status: int = 0


@dataclass
class Reply:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class WebhookReceiver:
    """An HTTP server that records every webhook request; `script(body, attempt_no) -> Reply` decides answers."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.attempts: dict[int, int] = {}
        self.script: Callable[[dict[str, Any], int], Reply] = lambda body, attempt: Reply()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                started = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                record = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, started)
                with receiver._lock:
                    update_id = body.get("update_id", 0)
                    receiver.attempts[update_id] = receiver.attempts.get(update_id, 0) + 1
                    attempt = receiver.attempts[update_id]
                    receiver.requests.append(record)
                reply = receiver.script(body, attempt)
                if reply.delay:
                    time.sleep(reply.delay)
                record.finished = time.monotonic()
                record.status = reply.status
                # The emulator may have given up meanwhile (timeout, reset): a closed socket is not a test failure.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def completed(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.finished]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Emu:
    """A small client for the emulator's control API and Bot API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def create_bot(self, username: str = "test_bot", **extra: Any) -> dict[str, Any]:
        response = self.http.post("/_emulator/bots", json={"username": username, **extra})
        response.raise_for_status()
        return response.json()

    def api(self, token: str, method: str, **params: Any) -> httpx.Response:
        return self.http.post(f"/bot{token}/{method}", json=params)

    def ok(self, token: str, method: str, **params: Any) -> Any:
        body = self.api(token, method, **params).json()
        assert body["ok"] is True, body
        return body["result"]

    def user_says(self, bot_id: int, text: str, user: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        response = self.http.post(
            f"/_emulator/bots/{bot_id}/messages", json={"user": user or USER, "text": text, **extra}
        )
        response.raise_for_status()
        return response.json()

    def webhook(self, bot_id: int) -> dict[str, Any]:
        return self.http.get(f"/_emulator/bots/{bot_id}/webhook").json()

    def messages(self, bot_id: int, chat_id: int) -> list[dict[str, Any]]:
        return self.http.get(f"/_emulator/bots/{bot_id}/chats/{chat_id}/messages").json()

    def calls(self, bot_id: int) -> list[dict[str, Any]]:
        return self.http.get(f"/_emulator/bots/{bot_id}/calls").json()


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    # Flood control off, explicitly: these tests check the API's shapes with several sends a second to one chat.
    # Flood control has its own tests (test_flood.py, test_bot_api.py's flood tests on a default emulator).
    with EmulatorServer(retry_max_delay=8.0, flood_control=False) as server:
        yield server


@pytest.fixture
def emu(emulator_server: EmulatorServer) -> Iterator[Emu]:
    client = Emu(emulator_server.base_url)
    client.http.post("/_emulator/reset").raise_for_status()
    yield client
    client.http.post("/_emulator/reset")
    client.http.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()
