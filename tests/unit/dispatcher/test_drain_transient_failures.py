"""Issue 10: a dependency down (vault, registry, Telegram) makes the chat wait and retry, capped a few seconds
apart, instead of dead-lettering the update after a few quick attempts; a poison update still goes to the dead
letters after `max_attempts`, and never blocks the chat behind it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tgm.domain.bots import BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.errors import SecretRejected, TelegramUnavailable, VaultUnavailable, is_transient
from tgm.domain.lane import LockKeeper
from tgm.domain.outbound import OutboundCall, SendMessage
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.drain_chat import DrainChat, DrainPolicy
from tgm.messaging.mailbox import InMemoryChatMailbox
from tgm.registry_client.client import RegistryUnavailable
from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters, InMemoryLocks, InMemoryUpdateDeduplicator
from tgm.services.dispatcher.outbound.drain import DrainOutbox
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore


def envelope(update_id: int) -> UpdateEnvelope:
    update = {"update_id": update_id, "message": {"chat": {"id": 5}, "from": {"id": 9}, "text": "hi"}}
    return UpdateEnvelope("bot-1", update_id, 0.0, "r", update)


class Rig:
    def __init__(self, handler: Callable[[UpdateEnvelope], object]) -> None:
        self.clock = ManualClock()
        self.box = InMemoryChatMailbox()
        self.dead = InMemoryDeadLetters()
        self.dedup = InMemoryUpdateDeduplicator()
        self.drain = DrainChat(
            self.box,
            InMemoryLocks(self.clock),
            self.dedup,
            lambda: handler,
            self.dead,
            self.clock,
            policy=DrainPolicy(max_attempts=4, min_backoff_seconds=0.5, max_backoff_seconds=10.0),
            keeper=LockKeeper(),  # nothing runs it: the work here ends within the lock's TTL
        )

    def run_until_idle(self, rounds: int) -> list[float]:
        """Runs the drain as its rescheduled messages would; returns the delays it asked for."""
        delays = []
        for _ in range(rounds):
            result = self.drain("bot-1", "5")
            if result.run_again_in is None:
                break
            delays.append(result.run_again_in)
            self.clock.advance(result.run_again_in)
        return delays


@pytest.mark.parametrize(
    "error",
    [VaultUnavailable("vault Decrypt failed: UNAVAILABLE"), RegistryUnavailable("x"), TelegramUnavailable("x")],
)
def test_a_dependency_down_for_a_while_delays_the_update_and_loses_nothing(error: Exception) -> None:
    failures = {"left": 30}  # far more than max_attempts
    handled: list[int] = []

    def handler(env: UpdateEnvelope) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise error
        handled.append(env.update_id)

    rig = Rig(handler)
    rig.box.push("5", envelope(1))
    rig.box.push("5", envelope(2))
    delays = rig.run_until_idle(100)
    assert handled == [1, 2], "both answered once the dependency came back, in order"
    assert rig.dead.list() == []
    assert len(delays) == 30
    assert max(delays) == 5.0, "retries stay a few seconds apart: the chat answers soon after the dependency is back"
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]


def test_a_poison_update_is_dead_lettered_after_max_attempts_and_the_chat_moves_on() -> None:
    handled: list[int] = []

    def handler(env: UpdateEnvelope) -> None:
        if env.update_id == 1:
            raise ValueError("a handler bug on a strange update")
        handled.append(env.update_id)

    rig = Rig(handler)
    rig.box.push("5", envelope(1))
    rig.box.push("5", envelope(2))
    delays = rig.run_until_idle(100)
    assert delays == [0.5, 1.0, 2.0], "tried max_attempts (4) times, then set aside"
    [letter] = rig.dead.list()
    assert letter.kind == "update" and letter.attempts == 4 and "ValueError" in letter.reason
    assert handled == [2], "the chat behind it is not blocked"


def test_a_malformed_update_is_dead_lettered_at_once_without_reaching_the_handler() -> None:
    handled: list[int] = []
    rig = Rig(lambda env: handled.append(env.update_id))
    # Queued before the gateway refused such updates: a chat id Telegram never sends.
    rig.box.push("5", UpdateEnvelope("bot-1", 1, 0.0, "r", {"update_id": 1, "message": {"chat": {"id": "5"}}}))
    rig.box.push("5", envelope(2))
    assert rig.run_until_idle(10) == [], "no retry can mend it"
    [letter] = rig.dead.list()
    assert letter.attempts == 0 and letter.reason == "malformed: message.chat.id must be an integer"
    assert handled == [2]


def test_a_ciphertext_the_vault_refuses_is_not_a_dependency_outage() -> None:
    assert is_transient(VaultUnavailable("down"))
    assert not is_transient(SecretRejected("vault Decrypt failed: INVALID_ARGUMENT"))
    assert not is_transient(ValueError("bug"))

    def handler(env: UpdateEnvelope) -> None:
        raise SecretRejected("vault Decrypt failed: INVALID_ARGUMENT")

    rig = Rig(handler)
    rig.box.push("5", envelope(1))
    assert rig.run_until_idle(100) == [0.5, 1.0, 2.0]
    assert len(rig.dead.list()) == 1


class FlakyTokenSender:
    """The outbox's sender: the vault (for the token) is down for the first `down` calls."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.sent: list[str] = []

    def token(self, bot_id: str) -> BotToken:
        if self.down > 0:
            self.down -= 1
            raise VaultUnavailable("vault Decrypt failed: UNAVAILABLE")
        return BotToken("123:" + "a" * 35)

    def send(self, bot_id: str, call: OutboundCall, token: BotToken | None = None) -> None:
        assert isinstance(call, SendMessage)
        self.sent.append(call.text)


class OpenLimiter:
    def acquire(self, bot_id: str, chat_id: int | None) -> float:
        return 0.0

    def pause(self, bot_id: str, seconds: float) -> None:
        raise AssertionError("no 429 here")


def test_a_queued_reply_waits_out_a_vault_outage_instead_of_being_dead_lettered() -> None:
    store = InMemoryOutboxStore()
    sender = FlakyTokenSender(down=20)  # the outbox gives up on a bug after 5 attempts
    dead = InMemoryDeadLetters()
    outbox = DrainOutbox(store, InMemoryLocks(), OpenLimiter(), lambda: sender, dead, keeper=LockKeeper())  # type: ignore[arg-type, return-value]
    call = {"id": "c1", "bot_id": "b", "chat_id": 5, "method": "send_message", "params": {"text": "hello"}}
    store.push("b", "5", json.dumps(call).encode(), "c1")
    delays = []
    for _ in range(50):
        result = outbox("b", "5")
        if result.run_again_in is None:
            break
        delays.append(result.run_again_in)
    assert sender.sent == ["hello"] and dead.list() == []
    assert len(delays) == 20 and max(delays) == 5.0
