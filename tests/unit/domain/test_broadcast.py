"""Broadcast delivery with fakes and a manual clock: each active subscriber at most once, across crashes, 429s,
cancels and lost authorization; the message's entities as safe HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.outbox import PerCallOutbox
from tgm.domain.administration.ports import BotStats, Subscriber, SubscriberStatus
from tgm.domain.bots import Bot, BotToken
from tgm.domain.broadcast import Broadcast, BroadcastState, Outcome, StartResult
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.clock import ManualClock
from tgm.domain.errors import BotNotFound, DependencyUnavailable, TelegramRequestFailed, TokenRejected
from tgm.domain.lane import LockKeeper
from tgm.domain.outbound import OutboundCall, SendMessage
from tgm.domain.use_cases.broadcast import BroadcastPolicy, BroadcastStep, RunBroadcast
from tgm.services.dispatcher.adapters.broadcasts import InMemoryBroadcastStore
from tgm.services.dispatcher.adapters.memory import InMemoryLocks
from tgm.services.dispatcher.presentation.broadcast_view import TelegramBroadcastView

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ADMIN = 501
BOT_ID = "0b8f2c1e-4a6d-4f1b-9c2e-7d3a5b6c8e9f"
BROADCAST_ID = "5e0c3a52-3c1f-4a8e-9f5e-2a6b1c7d8e90"
TOKEN = BotToken("123456789:AAbbccddeeffgghhiijjkkllmmnnooppqqr")


class Crash(BaseException):
    """A worker killed mid-batch: nothing after it runs (not an Exception, so no handler catches it)."""


@dataclass
class FakeAdmin:
    subscribers: list[Subscriber]
    owner: int = ADMIN
    calls: list[tuple[int, int]] = field(default_factory=list)

    def list_subscribers(self, actor_id: int, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        if actor_id != self.owner or bot_id != BOT_ID:
            raise BotNotFound("no such bot")
        self.calls.append((after_user_id, limit))
        return [s for s in self.subscribers if s.telegram_user_id > after_user_id][:limit]

    def details(self, actor_id: int, bot_id: str) -> tuple[Bot, BotStats]:
        raise AssertionError("not used")


@dataclass
class FakeSender:
    failures: dict[int, BaseException] = field(default_factory=dict)
    crash_after_send: int | None = None  # the send happens, then the worker dies before the outcome is stored
    sent: list[int] = field(default_factory=list)

    def token(self, bot_id: str) -> BotToken:
        return TOKEN

    def send(self, bot_id: str, call: OutboundCall, token: BotToken | None = None) -> None:
        assert isinstance(call, SendMessage)
        assert (bot_id, call.parse_mode, token) == (BOT_ID, "HTML", TOKEN)
        chat_id = call.chat_id
        failure = self.failures.pop(chat_id, None)
        if failure is not None:
            raise failure
        self.sent.append(chat_id)
        if chat_id == self.crash_after_send:
            self.crash_after_send = None
            raise Crash()


@dataclass
class FakeSlots:
    waits: list[float] = field(default_factory=list)  # answered first, then 0 (a slot) for ever
    paused: list[tuple[str, float]] = field(default_factory=list)

    def acquire_spare(self, bot_id: str, chat_id: int) -> float:
        return self.waits.pop(0) if self.waits else 0.0

    def pause(self, bot_id: str, seconds: float) -> None:
        self.paused.append((bot_id, seconds))


@dataclass
class FakeOutbox(PerCallOutbox):
    edits: list[dict[str, Any]] = field(default_factory=list)

    def edit_message_text(self, bot_id: str, chat_id: int, message_id: int, text: str, **kwargs: Any) -> None:
        self.edits.append({"bot_id": bot_id, "chat_id": chat_id, "message_id": message_id, "text": text, **kwargs})


@dataclass
class FakeBlocked:
    reported: list[tuple[str, int]] = field(default_factory=list)

    def blocked(self, bot_id: str, telegram_user_id: int) -> None:
        self.reported.append((bot_id, telegram_user_id))


def subscriber(user_id: int, status: SubscriberStatus = SubscriberStatus.ACTIVE) -> Subscriber:
    return Subscriber(user_id, NOW, NOW, status)


@dataclass
class World:
    admin: FakeAdmin
    sender: FakeSender = field(default_factory=FakeSender)
    slots: FakeSlots = field(default_factory=FakeSlots)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    blocked: FakeBlocked = field(default_factory=FakeBlocked)
    clock: ManualClock = field(default_factory=lambda: ManualClock(NOW))
    locks: InMemoryLocks = field(default_factory=InMemoryLocks)
    sleeps: list[float] = field(default_factory=list)
    batch: int = 3

    def __post_init__(self) -> None:
        self.store = InMemoryBroadcastStore(monotonic=self.clock.monotonic)
        self.tokens = CallbackTokens(b"k" * 32, self.clock)
        draft = Broadcast(BROADCAST_ID, BOT_ID, ADMIN, ADMIN, "mgr", "shop_bot", "en", "<b>Sale</b> today")
        self.store.create(draft, 600)
        active = sum(s.status is SubscriberStatus.ACTIVE for s in self.admin.subscribers)
        assert self.store.start(BROADCAST_ID, 77, active, NOW.timestamp()) is StartResult.STARTED

    def runner(self) -> RunBroadcast:
        return RunBroadcast(
            self.store,
            self.admin,  # type: ignore[arg-type]
            lambda: self.sender,
            self.slots,
            self.locks,
            TelegramBroadcastView(self.outbox),  # type: ignore[arg-type]
            self.tokens,
            self.clock,
            blocked_users=self.blocked,
            policy=BroadcastPolicy(batch_size=self.batch, progress_interval_seconds=5.0),
            sleep=self.sleeps.append,
            keeper=LockKeeper(),  # nothing runs it: the work here ends within the lock's TTL
        )

    def run_until_idle(self, limit: int = 100) -> list[BroadcastStep]:
        """Runs batches as the re-enqueued messages would, advancing the clock by each asked delay."""
        steps = []
        for _ in range(limit):
            step = self.runner()(BROADCAST_ID)
            steps.append(step)
            if step.run_again_in is None:
                return steps
            self.clock.advance(max(step.run_again_in, 1.0))
        raise AssertionError("the broadcast never finished")

    @property
    def broadcast(self) -> Broadcast:
        found = self.store.get(BROADCAST_ID)
        assert found is not None
        return found


def test_every_active_subscriber_gets_it_once_in_batches_and_the_final_state_is_shown() -> None:
    subs = [subscriber(u) for u in range(1, 9)]
    subs[2] = subscriber(3, SubscriberStatus.BLOCKED_BOT)
    subs[5] = subscriber(6, SubscriberStatus.BLOCKED_BY_ADMIN)
    world = World(FakeAdmin(subs))
    steps = world.run_until_idle()
    assert world.sender.sent == [1, 2, 4, 5, 7, 8]
    assert [s.run_again_in for s in steps] == [0.0, 0.0, None]  # 3 per batch, the last one short
    assert [after for after, _ in world.admin.calls] == [0, 3, 6]  # the cursor moves past skipped users too
    final = world.broadcast
    assert (final.state, final.sent, final.failed, final.blocked, final.remaining) == (BroadcastState.DONE, 6, 0, 0, 0)
    last = world.outbox.edits[-1]
    assert (last["bot_id"], last["chat_id"], last["message_id"], last.get("reply_markup")) == ("mgr", ADMIN, 77, None)
    assert "broadcast is done" in last["text"] and "Sent: 6" in last["text"]
    assert world.store.running_for(BOT_ID) is None  # the bot may broadcast again


def test_progress_is_edited_at_a_bounded_rate_with_a_signed_stop_button() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 13)]))
    runner = world.runner()
    runner(BROADCAST_ID)
    runner(BROADCAST_ID)  # within the interval: no second edit
    assert len(world.outbox.edits) == 1
    world.clock.advance(5.0)
    runner(BROADCAST_ID)
    assert len(world.outbox.edits) == 2
    edit = world.outbox.edits[-1]
    assert "Sent: 9" in edit["text"] and "Remaining: 3 of 12" in edit["text"]
    [[button]] = edit["reply_markup"]["inline_keyboard"]
    claim = world.tokens.verify(button["callback_data"], ADMIN, ADMIN)
    assert claim is not None and (claim.action, claim.bot_id) == (CallbackAction.BROADCAST_CANCEL, BROADCAST_ID)


def test_a_worker_killed_between_the_send_and_its_mark_does_not_send_twice() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 8)]))
    world.sender.crash_after_send = 5
    with pytest.raises(Crash):
        world.run_until_idle()
    world.locks = InMemoryLocks()  # the dead worker's lock expired
    world.run_until_idle()
    assert sorted(world.sender.sent) == [1, 2, 3, 4, 5, 6, 7] and len(world.sender.sent) == 7
    final = world.broadcast
    # The one whose fate is unknown counts as failed: at most once wins over at least once.
    assert (final.sent, final.failed, final.state) == (6, 1, BroadcastState.DONE)


def test_a_user_who_blocked_the_bot_is_reported_and_counted_and_other_refusals_fail_alone() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 5)]))
    world.sender.failures = {
        2: TelegramRequestFailed(403, "Forbidden: bot was blocked by the user"),
        3: TelegramRequestFailed(400, "Bad Request: chat not found"),
    }
    world.run_until_idle()
    assert world.sender.sent == [1, 4]
    assert world.blocked.reported == [(BOT_ID, 2)]
    assert (world.broadcast.sent, world.broadcast.blocked, world.broadcast.failed) == (2, 1, 1)


def test_a_429_pauses_the_bot_and_the_same_recipient_is_sent_once_after_the_pause() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 5)]))
    world.sender.failures = {2: TelegramRequestFailed(429, "Too Many Requests: retry after 7", retry_after=7)}
    first = world.runner()(BROADCAST_ID)
    assert first.run_again_in == 7.0 and world.slots.paused == [(BOT_ID, 7.0)]
    world.run_until_idle()
    assert world.sender.sent == [1, 2, 3, 4]
    assert (world.broadcast.sent, world.broadcast.failed) == (4, 0)


def test_a_close_slot_is_waited_for_in_place_and_a_far_one_ends_the_batch() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 4)]))
    world.slots.waits = [0.4, 0.0, 9.0]
    step = world.runner()(BROADCAST_ID)
    assert world.sleeps == [0.4]
    assert world.sender.sent == [1] and step.run_again_in == 9.0
    assert world.store.claim(BROADCAST_ID, 2) is None  # its claim was released: nobody was sent to
    world.slots.waits = [1.0] * 10  # replies keep the whole budget busy: the worker thread is not held for ever
    step = world.runner()(BROADCAST_ID)
    assert world.sleeps == [0.4, 1.0, 1.0, 1.0] and step.run_again_in == 1.0 and world.sender.sent == [1]


def test_cancel_stops_within_a_batch_and_shows_what_was_not_sent() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 10)]))
    world.runner()(BROADCAST_ID)
    assert world.store.request_cancel(BROADCAST_ID, NOW.timestamp())
    step = world.runner()(BROADCAST_ID)
    assert step.run_again_in is None and world.sender.sent == [1, 2, 3]
    assert world.broadcast.state is BroadcastState.CANCELLED
    assert "was cancelled" in world.outbox.edits[-1]["text"] and "Not sent: 6" in world.outbox.edits[-1]["text"]
    assert world.runner()(BROADCAST_ID).run_again_in is None and world.sender.sent == [1, 2, 3]


def test_a_cancel_during_a_batch_stops_it_within_a_few_recipients() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 30)]), batch=20)
    store = world.store

    def cancel_after_the_third(bot_id: str, chat_id: int) -> float:
        if chat_id == 3:  # the admin presses Stop while the batch is sending
            store.request_cancel(BROADCAST_ID, NOW.timestamp())
        return 0.0

    world.slots.acquire_spare = cancel_after_the_third  # type: ignore[method-assign]
    step = world.runner()(BROADCAST_ID)
    every = BroadcastPolicy().cancel_check_every
    assert step.run_again_in is None and world.sender.sent == list(range(1, every + 1))
    assert world.broadcast.state is BroadcastState.CANCELLED


def test_a_cancel_racing_the_last_page_ends_cancelled_not_done() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 3)]), batch=5)
    store = world.store

    def cancel_on_the_last(bot_id: str, chat_id: int) -> float:
        if chat_id == 2:
            store.request_cancel(BROADCAST_ID, NOW.timestamp())
        return 0.0

    world.slots.acquire_spare = cancel_on_the_last  # type: ignore[method-assign]
    world.runner()(BROADCAST_ID)
    assert world.sender.sent == [1, 2] and world.broadcast.state is BroadcastState.CANCELLED


def test_a_bot_no_longer_the_admins_stops_the_broadcast_and_a_registry_outage_postpones_it() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 4)]))
    admin = world.admin

    def down(*_args: Any) -> list[Subscriber]:
        raise DependencyUnavailable("down")

    world.admin.list_subscribers = down  # type: ignore[method-assign]
    assert world.runner()(BROADCAST_ID).run_again_in == BroadcastPolicy().retry_seconds
    world.admin = FakeAdmin(admin.subscribers, owner=ADMIN + 1)  # e.g. a co-admin whose role was revoked
    assert world.runner()(BROADCAST_ID).run_again_in is None
    assert world.sender.sent == [] and world.broadcast.state is BroadcastState.CANCELLED


def test_a_rejected_token_stops_the_broadcast_at_once() -> None:
    world = World(FakeAdmin([subscriber(u) for u in range(1, 6)]))
    world.sender.failures = {2: TokenRejected("revoked")}
    assert world.runner()(BROADCAST_ID).run_again_in is None
    assert world.sender.sent == [1] and world.broadcast.state is BroadcastState.CANCELLED
    assert world.broadcast.failed == 0  # the recipient it stopped at was not counted as tried


def test_one_runner_at_a_time() -> None:
    world = World(FakeAdmin([subscriber(1)]))
    held = world.locks.acquire(f"broadcast:{BROADCAST_ID}", 3.0)
    assert held is not None
    assert world.runner()(BROADCAST_ID).run_again_in == BroadcastPolicy().lock_ttl_seconds
    assert world.sender.sent == []


def test_store_claims_and_settles_once() -> None:
    store = InMemoryBroadcastStore()
    store.create(Broadcast(BROADCAST_ID, BOT_ID, ADMIN, ADMIN, "mgr", "b", None, "x"), 60)
    assert store.start(BROADCAST_ID, 1, 2, 0.0) is StartResult.STARTED
    assert store.start(BROADCAST_ID, 1, 2, 0.0) is StartResult.GONE
    assert store.claim(BROADCAST_ID, 9) is None
    assert store.claim(BROADCAST_ID, 9) is Outcome.SENDING
    store.settle(BROADCAST_ID, 9, Outcome.SENT)
    store.settle(BROADCAST_ID, 9, Outcome.SENT)
    assert store.claim(BROADCAST_ID, 9) is Outcome.SENT
    found = store.get(BROADCAST_ID)
    assert found is not None and (found.sent, found.cursor) == (1, 9)


def test_a_draft_lapses_with_its_ttl() -> None:
    clock = ManualClock(NOW)
    store = InMemoryBroadcastStore(monotonic=clock.monotonic)
    store.create(Broadcast(BROADCAST_ID, BOT_ID, ADMIN, ADMIN, "mgr", "b", None, "x"), 60)
    clock.advance(61)
    assert store.get(BROADCAST_ID) is None
    assert store.start(BROADCAST_ID, 1, 1, 0.0) is StartResult.GONE


def test_eta_follows_the_pace_so_far() -> None:
    from tgm.domain.broadcast import eta_seconds

    started = Broadcast(BROADCAST_ID, BOT_ID, ADMIN, ADMIN, "mgr", "b", None, "x", total=100, sent=20, started_at=0.0)
    assert eta_seconds(started, 10.0) == 40
    assert eta_seconds(Broadcast(BROADCAST_ID, BOT_ID, ADMIN, ADMIN, "mgr", "b", None, "x", total=5), 10.0) is None
