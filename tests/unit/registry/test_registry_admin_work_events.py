"""The admins' work the dispatcher reports to the trail (issue 15): broadcasts started / cancelled / finished and
senders blocked or unblocked from the inbox. The registry takes them only about a bot and a Telegram actor, and
writes the actor's role from its own records (owner, admin, none), whatever the caller claimed; the inbox switch is
a settings change saying which way it went. Through the dispatcher's own recorder and the operator's `tgm events`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from tests.unit.registry.fakes import OTHER_BOT_TOKEN, TOKEN
from tests.unit.registry.test_registry_events import ALICE, Rig, start
from tgm.apps.cli.events import run as run_events
from tgm.domain.administration.ports import SetInboxMode
from tgm.domain.events import Event, EventKind, Outcome, telegram_actor
from tgm.registry.v1 import registry_pb2 as pb
from tgm.registry_client.admin import GrpcBotAdmin
from tgm.registry_client.events import GrpcEventRecorder
from tgm.services.botregistry.manager_bot_identity import register_manager

HELPER, STRANGER = 2002, 3003


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    for started in start(tmp_path):
        assert register_manager(started.container.register_bot(), OTHER_BOT_TOKEN)
        yield started


def work(kind: EventKind, actor: int, bot_id: str, **details: str) -> Event:
    return Event(datetime(2026, 1, 1, tzinfo=UTC), kind, telegram_actor(actor), bot_id, Outcome.DONE, details)


def test_each_kind_is_recorded_with_the_role_the_registry_knows(rig: Rig) -> None:
    admin = GrpcBotAdmin(rig.channel)
    bot = rig.stub.RegisterBot(pb.RegisterBotRequest(owner_id=ALICE, token=TOKEN), timeout=5).bot
    admin.redeem_invite(HELPER, admin.create_invite(ALICE, bot.bot_id).code)
    recorder = GrpcEventRecorder(rig.channel)
    recorder.record(work(EventKind.BROADCAST_STARTED, ALICE, bot.bot_id, broadcast="b-1", total="6"))
    recorder.record(work(EventKind.BROADCAST_CANCELLED, HELPER, bot.bot_id, broadcast="b-1", role="owner"))
    recorder.record(
        work(EventKind.BROADCAST_FINISHED, ALICE, bot.bot_id, broadcast="b-1", sent="2", failed="0", end="requested")
    )
    recorder.record(work(EventKind.INBOX_SENDER_BLOCKED, HELPER, bot.bot_id, user="77"))
    recorder.record(work(EventKind.INBOX_SENDER_UNBLOCKED, STRANGER, bot.bot_id, user="77"))
    listed = list(reversed(rig.stub.ListEvents(pb.ListEventsRequest(bot_id=bot.bot_id), timeout=5).events))[-5:]
    assert [(e.kind, e.actor, e.details["role"]) for e in listed] == [
        ("broadcast_started", f"telegram:{ALICE}", "owner"),
        ("broadcast_cancelled", f"telegram:{HELPER}", "admin"),  # the caller's "owner" was not taken
        ("broadcast_finished", f"telegram:{ALICE}", "owner"),
        ("inbox_sender_blocked", f"telegram:{HELPER}", "admin"),
        ("inbox_sender_unblocked", f"telegram:{STRANGER}", "none"),
    ]
    assert dict(listed[0].details) == {"broadcast": "b-1", "total": "6", "role": "owner", "via": "anonymous"}
    assert dict(listed[3].details)["user"] == "77"


@pytest.mark.parametrize(
    "request_",
    [
        pb.RecordEventRequest(kind="broadcast_started", bot_id="some-bot", outcome="done"),  # no Telegram actor
        pb.RecordEventRequest(kind="inbox_sender_blocked", telegram_user_id=7, outcome="done"),  # no bot
        pb.RecordEventRequest(
            kind="broadcast_finished", telegram_user_id=7, bot_id="b", outcome="done", details={"text": "hi"}
        ),
    ],
)
def test_admin_work_without_an_actor_and_a_bot_or_with_a_text_is_refused(
    rig: Rig, request_: pb.RecordEventRequest
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        rig.stub.RecordEvent(request_, timeout=5)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert rig.kinds() == []


def test_switching_the_inbox_is_a_settings_change_saying_which_way(rig: Rig) -> None:
    admin = GrpcBotAdmin(rig.channel)
    bot = rig.stub.RegisterBot(pb.RegisterBotRequest(owner_id=ALICE, token=TOKEN), timeout=5).bot
    admin.redeem_invite(HELPER, admin.create_invite(ALICE, bot.bot_id).code)
    admin.update_settings(HELPER, bot.bot_id, SetInboxMode(True))
    admin.update_settings(ALICE, bot.bot_id, SetInboxMode(False))
    changes = [e for e in rig.stub.ListEvents(pb.ListEventsRequest(), timeout=5).events if e.kind == "settings_changed"]
    assert [(e.actor, e.details["change"], e.details["inbox"], e.details["role"]) for e in reversed(changes)] == [
        (f"telegram:{HELPER}", "SetInboxMode", "on", "admin"),
        (f"telegram:{ALICE}", "SetInboxMode", "off", "owner"),
    ]


def test_tgm_events_shows_them(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    bot = rig.stub.RegisterBot(pb.RegisterBotRequest(owner_id=ALICE, token=TOKEN), timeout=5).bot
    GrpcEventRecorder(rig.channel).record(
        work(EventKind.BROADCAST_FINISHED, ALICE, bot.bot_id, broadcast="b-1", sent="5", end="done")
    )
    GrpcEventRecorder(rig.channel).record(work(EventKind.INBOX_SENDER_BLOCKED, ALICE, bot.bot_id, user="77"))
    assert run_events(argparse.Namespace(bot=bot.bot_id, since="", limit=100), rig.channel) == 0
    shown = capsys.readouterr().out
    assert "broadcast_finished" in shown and "sent=5" in shown and "end=done" in shown
    assert "inbox_sender_blocked" in shown and "user=77" in shown and "role=owner" in shown
