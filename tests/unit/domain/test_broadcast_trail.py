"""Broadcasts in the event trail (issue 15): started (the total), a stop asked for, and finished once with the final
counts and how it ended — ids and counts only, never the message's text."""

from __future__ import annotations

from typing import Any

from tests.unit.domain.test_broadcast import ADMIN, BOT_ID, BROADCAST_ID, FakeAdmin, World, subscriber
from tests.unit.manager.test_manager_bot import ADMIN as MANAGER_ADMIN
from tests.unit.manager.test_manager_bot import BOT_ID as MANAGER_BOT_ID
from tests.unit.manager.test_manager_bot import harness
from tests.unit.manager.test_manager_broadcast import BroadcastHarness, EditingOutbox, FakeScheduler
from tgm.domain.errors import DependencyUnavailable, TokenRejected
from tgm.domain.events import Event, EventKind, Outcome
from tgm.domain.lane import LockKeeper
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.manager_bot.dependencies import ManagerConfig
from tgm.domain.use_cases.broadcast import BroadcastPolicy, RunBroadcast
from tgm.services.dispatcher.adapters.broadcasts import InMemoryBroadcastStore
from tgm.services.dispatcher.manager_bot.state import (
    InMemoryAdminSessions,
    InMemoryConversationStore,
    InMemoryUsedButtons,
)
from tgm.services.dispatcher.presentation.broadcast_view import TelegramBroadcastView
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView

SECRET_TEXT = "Sale today only"


class Events:
    def __init__(self, fail: bool = False) -> None:
        self.recorded: list[Event] = []
        self.fail = fail

    def record(self, event: Event) -> None:
        if self.fail:
            raise RuntimeError("trail down")
        self.recorded.append(event)


class TrailWorld(World):
    events: Events

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
            events=self.events,
            keeper=LockKeeper(),  # nothing runs it: the work here ends within the lock's TTL
        )


def world(users: int, events: Events | None = None) -> TrailWorld:
    made = TrailWorld(FakeAdmin([subscriber(u) for u in range(1, users + 1)]))
    made.events = events or Events()
    return made


def only(events: Events) -> Event:
    [event] = events.recorded
    assert event.outcome is Outcome.DONE and event.bot_id == BOT_ID and event.actor == f"telegram:{ADMIN}"
    assert SECRET_TEXT not in str(event) and "Sale" not in str(dict(event.details))
    return event


def test_a_finished_broadcast_is_recorded_once_with_its_counts() -> None:
    w = world(5)
    w.sender.failures = {2: RuntimeError("timeout")}
    w.run_until_idle()
    assert w.runner()(BROADCAST_ID).run_again_in is None  # a redelivered message after the end: no second line
    event = only(w.events)
    assert event.kind is EventKind.BROADCAST_FINISHED
    assert dict(event.details) == {
        "broadcast": BROADCAST_ID,
        "total": "5",
        "sent": "4",
        "failed": "1",
        "blocked": "0",
        "end": "done",
    }


def test_a_stop_an_access_lost_and_a_rejected_token_each_say_how_it_ended() -> None:
    stopped = world(9)
    stopped.runner()(BROADCAST_ID)
    stopped.store.request_cancel(BROADCAST_ID, 0.0)
    stopped.runner()(BROADCAST_ID)
    assert dict(only(stopped.events).details)["end"] == "requested"
    assert dict(only(stopped.events).details)["sent"] == "3"

    revoked = world(3)
    revoked.admin = FakeAdmin(revoked.admin.subscribers, owner=ADMIN + 1)  # the admin's role was revoked
    revoked.runner()(BROADCAST_ID)
    assert dict(only(revoked.events).details)["end"] == "access_lost"

    rejected = world(3)
    rejected.sender.failures = {2: TokenRejected("revoked")}
    rejected.runner()(BROADCAST_ID)
    assert dict(only(rejected.events).details)["end"] == "token_rejected"


def test_a_postponed_batch_records_nothing_and_a_failing_trail_never_stops_the_broadcast() -> None:
    w = world(3)
    subscribers = w.admin.list_subscribers

    def down(*_args: Any) -> Any:
        raise DependencyUnavailable("down")

    w.admin.list_subscribers = down  # type: ignore[method-assign]
    w.runner()(BROADCAST_ID)
    assert w.events.recorded == []
    w.admin.list_subscribers = subscribers  # type: ignore[method-assign]
    w.events.fail = True
    w.run_until_idle()
    assert w.sender.sent == [1, 2, 3] and w.broadcast.state.value == "done"


def manager_with_trail(events: Events) -> BroadcastHarness:
    base = harness()
    outbox = EditingOutbox()
    store, scheduler = InMemoryBroadcastStore(monotonic=base.clock.monotonic), FakeScheduler()
    bot = ManagerBot(
        base.admin,
        TelegramManagerView(outbox),
        base.tokens,
        InMemoryConversationStore(base.clock),
        InMemoryAdminSessions(base.clock),
        ManagerConfig(),
        InMemoryUsedButtons(base.clock),
        events=events,
        clock=base.clock,
        broadcasts=store,
        broadcast_scheduler=scheduler,
    )
    h = BroadcastHarness(bot, base.admin, outbox, base.tokens, base.clock)
    h.store, h.scheduler = store, scheduler
    return h


def test_the_manager_records_a_start_and_a_stop_asked_for_but_not_a_discarded_draft() -> None:
    events = Events()
    h = manager_with_trail(events)
    h.message("/broadcast @shop_bot")
    h.write(SECRET_TEXT)
    _, cancel = h.buttons()
    assert h.press(cancel["callback_data"]).action == "manager:broadcast_discarded"
    assert events.recorded == []  # a draft never sent is nobody's business

    h.message("/broadcast @shop_bot")
    h.write(SECRET_TEXT)
    send, _ = h.buttons()
    assert h.press(send["callback_data"]).action == "manager:broadcast_started"
    [started] = events.recorded
    running = h.store.running_for(MANAGER_BOT_ID)
    assert (started.kind, started.actor, started.bot_id) == (
        EventKind.BROADCAST_STARTED,
        f"telegram:{MANAGER_ADMIN}",
        MANAGER_BOT_ID,
    )
    assert dict(started.details) == {"broadcast": running, "total": "6"}

    [[stop]] = h.outbox.edits[-1]["reply_markup"]["inline_keyboard"]
    assert h.press(stop["callback_data"]).action == "manager:broadcast_cancel"
    assert events.recorded[-1].kind is EventKind.BROADCAST_CANCELLED
    assert dict(events.recorded[-1].details)["broadcast"] == running
    assert all(SECRET_TEXT not in str(dict(event.details)) for event in events.recorded)


def test_a_stop_by_command_is_recorded_too() -> None:
    events = Events()
    h = manager_with_trail(events)
    h.message("/broadcast @shop_bot")
    h.write(SECRET_TEXT)
    send, _ = h.buttons()
    h.press(send["callback_data"])
    assert h.message("/broadcast cancel @shop_bot").action == "manager:broadcast_cancel"
    assert [event.kind for event in events.recorded] == [EventKind.BROADCAST_STARTED, EventKind.BROADCAST_CANCELLED]
    assert h.message("/broadcast cancel @shop_bot").action == "manager:broadcast_cancel"  # asked again: once more
