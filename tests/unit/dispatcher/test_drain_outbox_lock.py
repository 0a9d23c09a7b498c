"""DrainOutbox keeps its lane's lock through the process's lock keeper while a send runs (issue 10): the lock TTL
is short so a dead worker's lane frees itself in seconds, and a slow send must not lose the lane meanwhile."""

from __future__ import annotations

import json
from collections.abc import Callable

from tgm.domain.bots import BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.lane import Holding, LockKeeper
from tgm.domain.outbound import OutboundCall, SendMessage
from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters, InMemoryLocks
from tgm.services.dispatcher.outbound.drain import DrainOutbox, OutboxPolicy
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore

TTL = 4.0


class StepKeeper(LockKeeper):
    """The keeper without its thread: the test performs the renewals the thread would."""

    def __init__(self) -> None:
        super().__init__()
        self.renewals: list[Callable[[], bool]] = []

    def hold(self, renew: Callable[[], bool], ttl_seconds: float) -> Holding:
        self.renewals.append(renew)
        return Holding(renew, ttl_seconds / 3, 0.0)


class OpenLimiter:
    def acquire(self, bot_id: str, chat_id: int | None) -> float:
        return 0.0

    def pause(self, bot_id: str, seconds: float) -> None:
        raise AssertionError("no 429 here")


class SlowSender:
    """A send that takes three lock TTLs; the keeper renews the lane's lock meanwhile (as its thread would)."""

    def __init__(self, clock: ManualClock, keeper: StepKeeper) -> None:
        self.clock = clock
        self.keeper = keeper
        self.sent: list[str] = []

    def token(self, bot_id: str) -> BotToken:
        return BotToken("123:" + "a" * 35)

    def send(self, bot_id: str, call: OutboundCall, token: BotToken | None = None) -> None:
        assert isinstance(call, SendMessage)
        for _ in range(9):
            self.clock.advance(TTL / 3)
            if self.keeper.renewals:  # the holding of this send (the latest one)
                assert self.keeper.renewals[-1](), "the lane's lock was lost during the send"
        self.sent.append(call.text)


def queued(store: InMemoryOutboxStore, call_id: str, text: str) -> None:
    call = {"id": call_id, "bot_id": "b", "chat_id": 5, "method": "send_message", "params": {"text": text}}
    store.push("b", "5", json.dumps(call).encode(), call_id)


def drain(keeper: StepKeeper, clock: ManualClock) -> tuple[DrainOutbox, InMemoryOutboxStore, SlowSender]:
    store = InMemoryOutboxStore()
    sender = SlowSender(clock, keeper)
    outbox = DrainOutbox(
        store,
        InMemoryLocks(clock),
        OpenLimiter(),
        lambda: sender,  # type: ignore[arg-type, return-value]
        InMemoryDeadLetters(),
        OutboxPolicy(lock_ttl_seconds=TTL),
        keeper=keeper,
    )
    return outbox, store, sender


def test_a_send_longer_than_the_lock_ttl_keeps_the_lane_and_completes() -> None:
    clock = ManualClock()
    keeper = StepKeeper()
    outbox, store, sender = drain(keeper, clock)
    queued(store, "c1", "one")
    queued(store, "c2", "two")
    result = outbox("b", "5")
    assert sender.sent == ["one", "two"]
    assert (result.sent, result.busy) == (2, False)
    assert store.size("b", "5") == 0 and store.is_sent("c1") and store.is_sent("c2")
    assert len(keeper.renewals) == 2, "each send ran under the keeper"


def test_without_renewals_a_slow_send_would_lose_the_lane() -> None:
    """The control: the same slow send with a keeper that never renews loses the lock (what the keeper prevents)."""

    class IdleKeeper(StepKeeper):
        def hold(self, renew: Callable[[], bool], ttl_seconds: float) -> Holding:
            return Holding(renew, ttl_seconds / 3, 0.0)  # registered nowhere: nothing renews it

    clock = ManualClock()
    keeper = IdleKeeper()
    outbox, store, sender = drain(keeper, clock)
    queued(store, "c1", "one")
    result = outbox("b", "5")
    assert sender.sent == ["one"]
    assert result.busy, "the lock expired during the send: the drain must report the lane lost"
    assert store.is_sent("c1"), "sent all the same: marked, so the next holder does not send it again"
