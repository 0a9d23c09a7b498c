"""The handle_update actor on a StubBroker with a real in-process Worker and fakes of the ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries

from libs.domain.bots import Bot, BotSettings, BotStatus, BotToken
from libs.domain.ports import SentMessage
from libs.domain.updates import UpdateEnvelope
from libs.domain.use_cases.handle_update import HandleUpdate
from libs.messaging.update_queue import DramatiqUpdateQueue
from services.dispatcher.adapters.direct_outbox import DirectOutbox
from services.dispatcher.adapters.memory import InMemoryUpdateDeduplicator
from services.dispatcher.workers.actors import UpdateHandlingFailed, register_actors

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_bot(welcome: str = "Welcome to the test bot!") -> Bot:
    return Bot(
        id="bot-1",
        public_id="pub-1",
        owner_id=7,
        telegram_bot_id=123456789,
        username="TestBot",
        status=BotStatus.ACTIVE,
        sealed_token=b"sealed",
        webhook_secret_sha256=b"",
        settings=BotSettings(welcome_text=welcome, language="en"),
        created_at=NOW,
        updated_at=NOW,
    )


class FakeBots:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def get_bot(self, bot_id: str) -> Bot | None:
        return self.bot if bot_id == self.bot.id else None


class FakeVault:
    def encrypt(self, bot_ref: str, kind: Any, plaintext: str) -> bytes:
        raise AssertionError("not used")

    def decrypt(self, bot_ref: str, kind: Any, purpose: Any, ciphertext: bytes) -> str:
        assert ciphertext == b"sealed"
        return TOKEN


class FakeTelegram:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, str]] = []
        self.lock = threading.Lock()

    def send_message(self, token: BotToken, chat_id: int, text: str, **_: Any) -> SentMessage:
        with self.lock:
            self.sent.append((token.reveal(), chat_id, text))
            return SentMessage(message_id=len(self.sent), chat_id=chat_id)


class Captured(Middleware):
    """Records what the worker saw after each attempt: the exception and the stored traceback."""

    def __init__(self) -> None:
        self.attempts: list[tuple[BaseException | None, str | None]] = []

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        self.attempts.append((exception, message.options.get("traceback")))


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


class Rig:
    def __init__(self, handler: Callable[[UpdateEnvelope], Any] | None = None) -> None:
        self.telegram = FakeTelegram()
        bots = FakeBots(make_bot())
        self.use_case = HandleUpdate(bots, DirectOutbox(bots, FakeVault(), self.telegram))
        self.broker = StubBroker()
        self.captured = Captured()
        # emit_after runs middleware in reverse order: sitting before Retries, we see what Retries stored.
        self.broker.add_middleware(self.captured, before=Retries)
        self.dedup = InMemoryUpdateDeduplicator()
        self.actor = register_actors(self.broker, lambda: handler or self.use_case, self.dedup)
        self.queue = DramatiqUpdateQueue(self.broker)
        self.worker = dramatiq.Worker(self.broker, worker_threads=2, worker_timeout=50)

    def send(self, update_id: int, text: str, request_id: str = "req-1") -> None:
        update = {
            "update_id": update_id,
            "message": {"message_id": 1, "chat": {"id": 4242}, "from": {"id": 9, "language_code": "en"}, "text": text},
        }
        self.queue.enqueue(UpdateEnvelope("bot-1", update_id, time.time(), request_id, update))

    def drain(self) -> None:
        self.broker.join("updates", timeout=5000)
        self.worker.join()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    r.worker.start()
    try:
        yield r
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()


def test_start_sends_the_welcome_text_to_the_chat(rig: Rig) -> None:
    rig.send(1, "/start")
    rig.drain()
    assert rig.telegram.sent == [(TOKEN, 4242, "Welcome to the test bot!")]


def test_start_addressed_to_this_bot_is_answered(rig: Rig) -> None:
    rig.send(1, "/start@testbot")
    rig.drain()
    assert len(rig.telegram.sent) == 1


def test_start_addressed_to_another_bot_is_ignored(rig: Rig) -> None:
    rig.send(1, "/start@OtherBot")
    rig.drain()
    assert rig.telegram.sent == []
    assert rig.dedup.already_done("bot-1", 1)


def test_same_update_twice_is_answered_once(rig: Rig) -> None:
    rig.send(5, "/start", request_id="first")
    rig.drain()
    rig.send(5, "/start", request_id="redelivered")
    rig.drain()
    assert len(rig.telegram.sent) == 1
    rig.send(6, "/start")
    rig.drain()
    assert len(rig.telegram.sent) == 2


def test_handler_exception_reaches_dramatiq_redacted(caplog: pytest.LogCaptureFixture) -> None:
    def explode(envelope: UpdateEnvelope) -> None:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed")

    caplog.set_level("DEBUG")
    r = Rig(handler=explode)
    r.worker.start()
    try:
        r.send(9, "/start")
        wait_until(lambda: len(r.captured.attempts) >= 1)
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()

    exception, stored_traceback = r.captured.attempts[0]
    assert isinstance(exception, UpdateHandlingFailed)
    assert TOKEN not in str(exception)
    assert "[REDACTED]" in str(exception)
    assert "RuntimeError" in str(exception)
    assert exception.__cause__ is None and exception.__context__ is None
    assert stored_traceback is not None and "UpdateHandlingFailed" in stored_traceback
    assert TOKEN not in stored_traceback
    assert TOKEN not in caplog.text
    assert not r.dedup.already_done("bot-1", 9)  # not marked: a retry will run the handler again


def test_failed_update_is_retried_then_handled_once() -> None:
    calls: list[int] = []

    class Flaky:
        def __init__(self, inner: Callable[[UpdateEnvelope], Any]) -> None:
            self.inner = inner

        def __call__(self, envelope: UpdateEnvelope) -> Any:
            calls.append(envelope.update_id)
            if len(calls) == 1:
                raise ConnectionError("telegram unreachable")
            return self.inner(envelope)

    r = Rig()
    flaky = Flaky(r.use_case)
    r.broker.actors.clear()
    r.actor = register_actors(r.broker, lambda: flaky, r.dedup)
    r.actor.options.update(min_backoff=10, max_backoff=20)  # keep the test fast; production uses 500 ms
    r.worker.start()
    try:
        r.send(11, "/start")
        wait_until(lambda: len(r.telegram.sent) == 1)
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert calls == [11, 11]
    assert r.dedup.already_done("bot-1", 11)


def test_actor_is_declared_with_the_retry_policy() -> None:
    broker = StubBroker()
    actor = register_actors(broker, lambda: lambda envelope: None, InMemoryUpdateDeduplicator())
    assert actor.actor_name == "handle_update"
    assert actor.queue_name == "updates"
    assert actor.options["max_retries"] == 5
    assert actor.options["min_backoff"] == 500


def test_malformed_message_is_dropped_without_retry() -> None:
    r = Rig()
    r.worker.start()
    try:
        r.actor.send({"bot_id": "bot-1"})
        r.drain()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert [exc for exc, _ in r.captured.attempts] == [None]
