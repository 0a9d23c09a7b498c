"""Reliability harness: real Redis, the Telegram emulator, and N `serve` worker processes (the real
dispatcher with fixture bots, see worker_main.py). Updates are put where the gateway puts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.envelope_signing import EnvelopeSigner
from tgm.messaging.mailbox import RedisChatMailbox
from tgm.messaging.update_queue import MailboxUpdateQueue
from tgm.tools.devstack.emulator_control import EmulatorControl

REPO = Path(__file__).resolve().parents[2]
ENVELOPE_KEY = "reliability-tests-envelope-signing-key-0123456789"


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Workers:
    def __init__(self, redis_url: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, count: int, bots: list[dict[str, Any]], emulator_url: str, **env: str) -> list[int]:
        started = []
        for _ in range(count):
            log = self.log_dir / f"worker-{len(self.procs)}.log"
            full_env = {
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": str(REPO / "src"),
                "PYTHONUNBUFFERED": "1",
                "REDIS_URL": self.redis_url,
                "TELEGRAM_API_BASE_URL": emulator_url,
                "DISPATCHER_THREADS": "4",
                # These workers talk to in-process fakes of the registry and vault (worker_main), no gRPC peer.
                "TGM_INSECURE_DEV": "1",
                "CALLBACK_SIGNING_KEY": "reliability-tests-shared-signing-key-0123456789",
                "ENVELOPE_SIGNING_KEY": ENVELOPE_KEY,
                "TEST_BOTS_JSON": json.dumps(bots),
                **env,
            }
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tests.reliability.worker_main"],
                    cwd=REPO,
                    env=full_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            self.procs.append((proc, log))
            started.append(len(self.procs) - 1)
        for index in started:
            proc, log = self.procs[index]
            wait_until(
                lambda p=proc, lg=log: p.poll() is None and "dispatcher started" in lg.read_text(errors="replace"),
                30,
                f"worker {index} to start ({log})",
            )
        return started

    def stop(self, index: int) -> None:
        proc, _ = self.procs[index]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for index in range(len(self.procs)):
            self.stop(index)

    def log_text(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.procs if log.exists())


class Harness:
    def __init__(self, redis_url: str, emulator: Any, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.emulator_url = emulator.base_url
        self.control = EmulatorControl(emulator.base_url)
        self.workers = Workers(redis_url, log_dir)
        self.broker = RedisBroker(url=redis_url)
        # Updates are put where the gateway puts them, tagged as the gateway tags them.
        signer = EnvelopeSigner(ENVELOPE_KEY.encode())
        self.queue = MailboxUpdateQueue(self.broker, RedisChatMailbox(self.client, signer=signer))
        self._next_update = 1000

    def bot(self, commands: dict[str, str] | None = None, api: dict[str, Any] | None = None) -> dict[str, Any]:
        created = self.control.create_bot(f"rel_{uuid.uuid4().hex[:10]}_bot")
        return {
            "bot_id": f"bot-{created['id']}",
            "telegram_bot_id": created["id"],
            "username": created["username"],
            "token": created["token"],
            "custom_commands": commands or {},
            "api_commands": api or {},
        }

    def open_chat(self, bot: dict[str, Any], user_id: int) -> None:
        """A chat exists for Telegram once its user wrote to the bot (no webhook: nothing is delivered)."""
        self.control.send_text(bot["telegram_bot_id"], {"id": user_id, "first_name": "U"}, "hi")

    def envelope(self, bot: dict[str, Any], user_id: int, text: str, update_id: int | None = None) -> UpdateEnvelope:
        if update_id is None:
            self._next_update += 1
            update_id = self._next_update
        update = {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": user_id, "is_bot": False, "first_name": "U", "language_code": "en"},
                "text": text,
            },
        }
        return UpdateEnvelope(bot["bot_id"], update_id, time.time(), uuid.uuid4().hex, update)

    def send(self, bot: dict[str, Any], user_id: int, text: str) -> UpdateEnvelope:
        envelope = self.envelope(bot, user_id, text)
        self.queue.enqueue(envelope)
        return envelope

    def sent_count(self) -> int:
        """Outbound calls Telegram accepted (marked sent right after its answer); cheap to poll."""
        return len(self.client.keys("tgm:obox-sent:*"))

    def replies(self, bot: dict[str, Any], chat_id: int) -> list[str]:
        return [m["text"] for m in self.control.bot_messages(bot["telegram_bot_id"], chat_id)]

    def close(self) -> None:
        self.workers.stop_all()
        self.broker.close()
        self.control.close()
        self.client.close()


class EmulatorProcess:
    """The Telegram emulator in its own process, so the test's polling does not skew its clock."""

    def __init__(self, log_dir: Path) -> None:
        from tgm.tools.devstack.stack import free_port, http_ok

        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        with (log_dir / "emulator.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tgm.tools.telegram_emulator", "--host", "127.0.0.1", "--port", str(port)],
                cwd=REPO,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO / "src")},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        ok = http_ok(f"{self.base_url}/_emulator/health")

        def ready() -> bool:
            try:
                return ok()
            except Exception:
                return False

        wait_until(ready, 30, "the emulator")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    server = EmulatorProcess(tmp_path_factory.mktemp("emulator"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def harness(redis_server: Any, emulator_server: EmulatorProcess, tmp_path: Path) -> Iterator[Harness]:
    redis.Redis.from_url(redis_server.url).flushdb()
    h = Harness(redis_server.url, emulator_server, tmp_path)
    try:
        yield h
    finally:
        h.close()
        h.control = EmulatorControl(emulator_server.base_url)
        h.control._call("PUT", "/flood", json={"enabled": False})
        h.control.close()


def run_threads(targets: list[Callable[[], None]]) -> None:
    barrier = threading.Barrier(len(targets))

    def run(target: Callable[[], None]) -> None:
        barrier.wait()
        target()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
