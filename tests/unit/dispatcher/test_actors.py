"""The dispatcher's actors on a StubBroker with a real in-process Worker: the whole pipeline
(mailbox → drain_chat → handler → outbox → drain_outbox → Telegram) with in-memory adapters and fakes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import dramatiq
import pytest
from dependency_injector import providers
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries

from tgm.domain.bots import ApiCommand, Bot, BotSettings, BotStatus, BotToken
from tgm.domain.errors import TelegramRequestFailed
from tgm.domain.outbound import SendMessage
from tgm.domain.ports import SentMessage
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.run_api_call import ExternalApiFailed
from tgm.messaging.mailbox import in_memory_mailbox_for
from tgm.messaging.update_queue import HANDLE_UPDATE_ACTOR, MailboxUpdateQueue
from tgm.services.dispatcher.container import DispatcherContainer
from tgm.services.dispatcher.settings import DispatcherSettings
from tgm.services.dispatcher.workers.actors import UpdateHandlingFailed, register_actors

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
QUEUES = ("updates", "outbox", "external")


def make_bot() -> Bot:
    commands = {f"/m{i}": f"reply {i}" for i in range(1, 31)}
    return Bot(
        id="bot-1",
        public_id="pub-1",
        owner_id=7,
        telegram_bot_id=123456789,
        username="TestBot",
        status=BotStatus.ACTIVE,
        sealed_token=b"sealed",
        webhook_secret_sha256=b"",
        settings=BotSettings(
            welcome_text="Welcome to the test bot!",
            language="en",
            custom_commands=commands,
            api_commands={"/quote": ApiCommand(url="https://api.example.test/quote", method="GET")},
        ),
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
        self.answered: list[tuple[str, str | None]] = []
        self.flood_once: set[int] = set()
        self.blocked: set[int] = set()  # chats whose user blocked the bot: 403 for good
        self.refusals: list[int] = []
        self.lock = threading.Lock()

    def send_message(self, token: BotToken, message: SendMessage) -> SentMessage:
        chat_id, text = message.chat_id, message.text
        with self.lock:
            if chat_id in self.blocked:
                self.refusals.append(chat_id)
                raise TelegramRequestFailed(403, "Forbidden: bot was blocked by the user")
            if chat_id in self.flood_once:
                self.flood_once.discard(chat_id)
                raise TelegramRequestFailed(429, "Too Many Requests: retry after 1", retry_after=1)
            self.sent.append((token.reveal(), chat_id, text))
            return SentMessage(message_id=len(self.sent), chat_id=chat_id)

    def answer_callback_query(self, token: BotToken, callback_query_id: str, text: str | None = None) -> None:
        with self.lock:
            self.answered.append((callback_query_id, text))


class FakeApi:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.open = False

    def call(
        self, url: str, method: str, timeout_seconds: float, payload: dict[str, Any] | None, scope: str = ""
    ) -> str:
        self.calls += 1
        if self.fail:
            raise ExternalApiFailed(f"HTTP 503 while holding {TOKEN}")
        return f"quote for {payload}"

    def is_open(self, url: str, scope: str = "") -> bool:
        return self.open


class Captured(Middleware):
    def __init__(self) -> None:
        self.attempts: list[tuple[BaseException | None, str | None]] = []

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        self.attempts.append((exception, message.options.get("traceback")))


class Rig:
    def __init__(self, **settings: Any) -> None:
        defaults: dict[str, Any] = {
            "redis_url": "",
            "update_min_backoff_seconds": 0.01,
            "update_max_backoff_seconds": 0.05,
            "external_api_retry_base_seconds": 0.01,
            "external_api_max_attempts": 3,
        }
        self.settings = DispatcherSettings(**{**defaults, **settings})
        self.broker = StubBroker()
        self.captured = Captured()
        self.broker.add_middleware(self.captured, before=Retries)
        self.telegram = FakeTelegram()
        self.api = FakeApi()
        self.container = DispatcherContainer(settings=self.settings, broker=self.broker)
        self.container.bot_directory.override(providers.Object(FakeBots(make_bot())))
        self.container.vault.override(providers.Object(FakeVault()))
        self.container.telegram.override(providers.Object(self.telegram))
        self.container.external_api.override(providers.Object(self.api))
        self.actors = register_actors(self.broker, self.container)
        self.queue = MailboxUpdateQueue(self.broker, in_memory_mailbox_for(self.broker))
        self.worker = dramatiq.Worker(self.broker, worker_threads=4, worker_timeout=20)

    def send(self, update_id: int, text: str, chat_id: int = 4242, user_id: int = 9) -> UpdateEnvelope:
        update = {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "chat": {"id": chat_id},
                "from": {"id": user_id, "language_code": "en"},
                "text": text,
            },
        }
        envelope = UpdateEnvelope("bot-1", update_id, time.time(), f"req-{update_id}", update)
        self.queue.enqueue(envelope)
        return envelope

    def settle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for queue in QUEUES:
                self.broker.join(queue, timeout=int(timeout * 1000))
            self.worker.join()
            if all(self.broker.queues[q].qsize() == 0 for q in self.broker.queues):
                return
        raise AssertionError("queues did not settle")

    def texts(self, chat_id: int = 4242) -> list[str]:
        return [text for _, chat, text in self.telegram.sent if chat == chat_id]


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    r.worker.start()
    try:
        yield r
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


def test_start_sends_the_welcome_text_through_the_outbox(rig: Rig) -> None:
    rig.send(1, "/start")
    rig.settle()
    assert rig.telegram.sent == [(TOKEN, 4242, "Welcome to the test bot!")]


def test_start_addressed_to_another_bot_is_ignored_but_marked_done(rig: Rig) -> None:
    rig.send(1, "/start@OtherBot")
    rig.settle()
    assert rig.telegram.sent == []
    assert rig.container.deduplicator().already_done("bot-1", 1)


def test_same_update_five_times_is_answered_once(rig: Rig) -> None:
    for _ in range(5):
        rig.send(5, "/start")
    rig.settle()
    rig.send(6, "/start")
    rig.settle()
    assert len(rig.telegram.sent) == 2


def test_replies_keep_the_order_of_one_chat_with_many_threads() -> None:
    r = Rig(outbound_per_chat_per_second=1000, outbound_per_bot_per_second=1000)
    r.worker.start()
    try:
        for i in range(1, 21):
            r.send(100 + i, f"/m{i}")
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert r.texts() == [f"reply {i}" for i in range(1, 21)]


def test_rate_limit_answers_once_with_the_real_wait() -> None:
    r = Rig(rate_limits_json='{"cmd:/start": {"limit": 3, "window": 60}}', outbound_per_chat_per_second=1000)
    r.worker.start()
    try:
        for i in range(10):
            r.send(200 + i, "/start")
        r.settle()
        r.send(300, "/m1", user_id=10, chat_id=5151)  # another user, another action: unaffected
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    texts = r.texts()
    assert texts[:3] == ["Welcome to the test bot!"] * 3
    assert texts[3:] == ["⏳ Too many commands in a short time. Wait 20 seconds."]
    assert r.texts(5151) == ["reply 1"]


def test_a_failing_handler_makes_the_chat_wait_then_goes_to_the_dead_letters(caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    r = Rig(update_max_attempts=3, outbound_per_chat_per_second=1000)
    calls: list[int] = []
    inner = r.container.handle_update()

    def flaky(envelope: UpdateEnvelope) -> Any:
        calls.append(envelope.update_id)
        if envelope.update_id == 1:
            raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed")
        if envelope.update_id == 2 and calls.count(2) == 1:
            raise ConnectionError("registry unreachable")
        return inner(envelope)

    r.container.handle_update.override(providers.Object(flaky))
    r.worker.start()
    try:
        r.send(1, "/m1")
        r.send(2, "/m2")
        r.send(3, "/m3")
        wait_until(lambda: len(r.texts()) == 2)
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert calls == [1, 1, 1, 2, 2, 3]  # the chat waited for update 1's retries, in order
    assert r.texts() == ["reply 2", "reply 3"]
    letters = r.container.dead_letters().list()
    assert [(d.kind, d.attempts, d.payload["update_id"]) for d in letters] == [("update", 3, 1)]
    assert TOKEN not in letters[0].reason and "[REDACTED]" in letters[0].reason
    assert TOKEN not in caplog.text


def test_infrastructure_failure_reaches_dramatiq_redacted() -> None:
    r = Rig()

    class Broken:
        def __call__(self, bot_id: str, chat_key: str) -> Any:
            raise RuntimeError(f"redis said {TOKEN}")

    r.container.drain_chat.override(providers.Object(Broken()))
    r.worker.start()
    try:
        r.send(9, "/start")
        wait_until(lambda: len(r.captured.attempts) >= 1)
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    exception, stored_traceback = r.captured.attempts[0]
    assert isinstance(exception, UpdateHandlingFailed)
    assert TOKEN not in str(exception) and "[REDACTED]" in str(exception)
    assert exception.__cause__ is None and exception.__context__ is None
    assert stored_traceback is not None and TOKEN not in stored_traceback


def test_legacy_handle_update_message_goes_through_the_mailbox(rig: Rig) -> None:
    update = {"update_id": 77, "message": {"chat": {"id": 4242}, "from": {"id": 9}, "text": "/start"}}
    envelope = UpdateEnvelope("bot-1", 77, time.time(), "legacy", update)
    rig.actors[HANDLE_UPDATE_ACTOR].send(envelope.to_message())
    rig.actors[HANDLE_UPDATE_ACTOR].send({"bot_id": "bot-1"})  # malformed: dropped
    rig.settle()
    assert rig.texts() == ["Welcome to the test bot!"]


def test_telegram_429_reschedules_the_send_and_it_arrives_once(rig: Rig) -> None:
    rig.telegram.flood_once.add(4242)
    rig.send(1, "/start")
    wait_until(lambda: len(rig.telegram.sent) == 1)
    rig.settle()
    assert rig.texts() == ["Welcome to the test bot!"]


def test_external_api_command_replies_through_the_outbox(rig: Rig) -> None:
    rig.send(1, "/quote hello")
    wait_until(lambda: len(rig.texts()) == 1)
    rig.settle()
    assert rig.texts() == ["quote for {'command': '/quote', 'text': 'hello'}"]


def test_external_api_failing_retries_then_dead_letter_and_open_breaker_answers_at_once(rig: Rig) -> None:
    rig.api.fail = True
    rig.send(1, "/quote x")
    wait_until(lambda: len(rig.texts()) == 1)
    rig.settle()
    assert rig.api.calls == 3
    assert rig.texts() == ["⚠️ Could not get an answer from the external service. Try again later."]
    letters = rig.container.dead_letters().list()
    assert [d.kind for d in letters] == ["api_call"] and TOKEN not in letters[0].reason
    rig.api.open = True
    rig.send(2, "/quote y")
    wait_until(lambda: len(rig.texts()) == 2)
    assert rig.api.calls == 3  # not called while open
    assert rig.texts()[-1].startswith("🚧")


@pytest.mark.parametrize("key", ["", "too-short"])
def test_worker_refuses_to_start_without_a_shared_signing_key(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tgm.services.dispatcher.__main__ import serve
    from tgm.services.dispatcher.settings import DispatcherSettings

    settings = DispatcherSettings(redis_url="redis://127.0.0.1:1/0", callback_signing_key=key)
    assert serve(settings) == 2
    assert "CALLBACK_SIGNING_KEY" in capsys.readouterr().err


def test_a_handler_that_replied_then_failed_is_rerun_and_the_reply_is_sent_once() -> None:
    r = Rig(update_max_attempts=3, outbound_per_chat_per_second=1000)
    inner = r.container.handle_update()
    runs: list[int] = []

    def replies_then_fails_once(envelope: UpdateEnvelope) -> Any:
        runs.append(envelope.update_id)
        outcome = inner(envelope)  # queues "reply 1"
        if len(runs) == 1:
            raise ConnectionError("the registry went away after the reply was queued")
        return outcome

    r.container.handle_update.override(providers.Object(replies_then_fails_once))
    r.worker.start()
    try:
        r.send(1, "/m1")
        wait_until(lambda: len(runs) == 2)
        r.settle()
        r.send(2, "/m2")
        wait_until(lambda: len(r.texts()) == 2)
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert runs == [1, 1, 2]
    assert r.texts() == ["reply 1", "reply 2"]


def test_settings_refuse_a_heartbeat_shorter_than_the_chat_lock() -> None:
    from pydantic import ValidationError

    from tgm.services.dispatcher.settings import DispatcherSettings

    with pytest.raises(ValidationError, match="BROKER_HEARTBEAT_TIMEOUT_MS"):
        DispatcherSettings(broker_heartbeat_timeout_ms=20_000, chat_lock_ttl_seconds=30)
    assert DispatcherSettings(broker_heartbeat_timeout_ms=31_000, chat_lock_ttl_seconds=30).chat_lock_ttl_seconds == 30


def test_a_burst_to_one_chat_is_one_drain_message_and_every_update_is_answered() -> None:
    r = Rig(outbound_per_chat_per_second=1000, outbound_per_bot_per_second=1000)
    try:
        for i in range(1, 11):
            r.send(200 + i, f"/m{i}")
        # Worker not started yet: what the producer queued is all there is.
        assert r.broker.queues["updates"].qsize() == 1
        r.worker.start()
        r.settle()
        assert r.texts() == [f"reply {i}" for i in range(1, 11)]
        # The drain cleared the chat's "drain due" flag: the next update schedules a new drain and is answered.
        r.send(300, "/m1")
        r.settle()
        assert r.texts()[-1] == "reply 1" and len(r.texts()) == 11
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()


class EnqueueCounter(Middleware):
    def __init__(self) -> None:
        self.by_actor: dict[str, int] = {}

    def after_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        self.by_actor[message.actor_name] = self.by_actor.get(message.actor_name, 0) + 1


def test_a_reply_the_limiter_allows_is_sent_by_the_chat_drain_itself() -> None:
    r = Rig(outbound_per_chat_per_second=1000, outbound_per_bot_per_second=1000)
    counter = EnqueueCounter()
    r.broker.add_middleware(counter)
    r.worker.start()
    try:
        for chat in (1, 2, 3):
            r.send(400 + chat, "/start", chat_id=chat)
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert sorted(chat for _, chat, _ in r.telegram.sent) == [1, 2, 3]
    assert counter.by_actor.get("drain_outbox", 0) == 0, "no second hop when the reply could go at once"


def test_a_reply_the_limiter_holds_back_goes_out_later_once_and_in_order() -> None:
    r = Rig(outbound_per_chat_per_second=1, outbound_per_bot_per_second=1000)
    counter = EnqueueCounter()
    r.broker.add_middleware(counter)
    r.worker.start()
    try:
        for i in (1, 2, 3):
            r.send(500 + i, f"/m{i}")  # one chat: 1 message/s, so the 2nd and 3rd replies must wait
        wait_until(lambda: len(r.texts()) == 3, timeout=30)
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert r.texts() == ["reply 1", "reply 2", "reply 3"]
    assert counter.by_actor.get("drain_outbox", 0) >= 1, "the held-back replies were left to a delayed outbox drain"


def test_when_the_handler_fails_what_it_queued_is_left_to_the_outbox_drain_and_sent_once() -> None:
    # 1 message/s per chat: reply 1 goes out directly, reply 2 has to be queued; then its handler fails for good.
    r = Rig(update_max_attempts=1, outbound_per_chat_per_second=1)
    counter = EnqueueCounter()
    r.broker.add_middleware(counter)
    inner = r.container.handle_update()

    def second_fails_after_replying(envelope: UpdateEnvelope) -> Any:
        outcome = inner(envelope)
        if envelope.update_id == 2:
            raise ConnectionError("failed after queuing the reply")
        return outcome

    r.container.handle_update.override(providers.Object(second_fails_after_replying))
    r.worker.start()
    try:
        r.send(1, "/m1")
        r.send(2, "/m2")
        wait_until(lambda: len(r.texts()) == 2, timeout=30)
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert r.texts() == ["reply 1", "reply 2"]
    assert counter.by_actor.get("drain_outbox", 0) >= 1


def test_a_reply_sent_directly_is_not_sent_again_when_its_update_runs_again() -> None:
    r = Rig(update_max_attempts=3, outbound_per_chat_per_second=1000)
    inner = r.container.handle_update()
    runs: list[int] = []

    def replies_then_fails_once(envelope: UpdateEnvelope) -> Any:
        runs.append(envelope.update_id)
        outcome = inner(envelope)  # "reply 1" goes out at once (direct send)
        if len(runs) == 1:
            raise ConnectionError("the registry went away after the reply was sent")
        return outcome

    r.container.handle_update.override(providers.Object(replies_then_fails_once))
    r.worker.start()
    try:
        r.send(1, "/m1")
        wait_until(lambda: len(runs) == 2)
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert runs == [1, 1]
    assert r.texts() == ["reply 1"]


def test_a_reply_telegram_refuses_for_good_is_tried_once_and_dead_lettered() -> None:
    r = Rig(outbound_per_chat_per_second=1000, outbound_per_bot_per_second=1000)
    r.telegram.blocked.add(4242)
    counter = EnqueueCounter()
    r.broker.add_middleware(counter)
    r.worker.start()
    try:
        r.send(1, "/start")
        r.settle()
    finally:
        r.worker.stop(timeout=5000)
        r.broker.close()
    assert r.telegram.refusals == [4242], "a 403 is final: no second attempt through the queue"
    letters = r.container.dead_letters().list(10)
    assert [letter.kind for letter in letters] == ["outbound"]
    assert counter.by_actor.get("drain_outbox", 0) == 0
    assert r.container.deduplicator().already_done("bot-1", 1)


def test_the_dispatchers_trimmed_middleware_carries_every_actor_option() -> None:
    from tgm.services.dispatcher.adapters.redis_broker import dispatcher_middleware

    broker = StubBroker(middleware=dispatcher_middleware())
    declared = register_actors(broker, runtime=object())  # type: ignore[arg-type]  # providers are not called here

    names = {type(item).__name__ for item in broker.middleware}
    assert {"Retries", "TimeLimit"} <= names
    assert not names & {"AgeLimit", "ShutdownNotifications", "Callbacks", "Pipelines"}
    for actor in declared.values():
        assert actor.options["max_retries"] >= 5 and actor.options["max_backoff"] > actor.options["min_backoff"]
