"""The registry's event trail over a real in-process gRPC server (Container on SQLite, fakes for Telegram/vault):
each admin action adds one event with its actor and no secret; RecordEvent takes only the kinds other services may
add; ListEvents filters; a trail that cannot be written never undoes or refuses the action."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from dependency_injector import providers

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import TOKEN, FakeTelegram
from tgm.domain.bots import BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.events import Event, EventFilter
from tgm.grpc_runtime.channels import build_server
from tgm.registry.v1 import registry_pb2 as pb
from tgm.registry.v1 import registry_pb2_grpc
from tgm.services.botregistry import migrate
from tgm.services.botregistry.container import Container
from tgm.services.botregistry.settings import RegistrySettings

ALICE = 1001
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Telegram(FakeTelegram):
    def delete_webhook(self, token: BotToken, drop_pending_updates: bool = False) -> None:
        pass


class BrokenTrail:
    def record(self, event: Event) -> None:
        raise RuntimeError("database full")

    def recent(self, query: EventFilter) -> list[Event]:
        return []

    def purge_older_than(self, cutoff: datetime) -> int:
        return 0


@dataclass
class Rig:
    stub: registry_pb2_grpc.RegistryServiceStub
    container: Container
    clock: ManualClock
    channel: grpc.Channel

    def kinds(self) -> list[str]:
        return [event.kind for event in self.stub.ListEvents(pb.ListEventsRequest(), timeout=5).events]


def start(tmp_path: Path, trail: Any = None) -> Iterator[Rig]:
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(db_url)
    clock = ManualClock(T0)
    container = Container()
    container.settings.override(RegistrySettings(db_url=db_url, webhook_base_url="https://hooks.test"))
    container.telegram.override(providers.Object(Telegram()))
    container.vault.override(providers.Object(InMemoryTokenVault()))
    container.clock.override(providers.Object(clock))
    if trail is not None:
        container.events.override(providers.Object(trail))
    server, _health = build_server(max_workers=4)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(container.servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Rig(registry_pb2_grpc.RegistryServiceStub(channel), container, clock, channel)
    finally:
        channel.close()
        server.stop(0)
        container.engine().dispose()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from start(tmp_path)


def test_each_admin_action_adds_one_event_with_its_actor_and_no_content(rig: Rig) -> None:
    stub = rig.stub
    bot = stub.RegisterBot(pb.RegisterBotRequest(owner_id=ALICE, token=TOKEN), timeout=5).bot
    for enabled in (False, True):
        rig.clock.advance(1)
        stub.SetBotStatus(pb.SetBotStatusRequest(actor_id=ALICE, bot_id=bot.bot_id, enabled=enabled), timeout=5)
    rig.clock.advance(1)
    stub.UpdateBotSettings(
        pb.UpdateBotSettingsRequest(actor_id=ALICE, bot_id=bot.bot_id, welcome_text="Olá, segredo 42"), timeout=5
    )
    rig.clock.advance(1)
    stub.RotateWebhookSecret(pb.RotateWebhookSecretRequest(actor_id=ALICE, bot_id=bot.bot_id), timeout=5)
    rig.clock.advance(1)
    stub.DeleteBot(pb.DeleteBotRequest(actor_id=ALICE, bot_id=bot.bot_id), timeout=5)
    events = list(stub.ListEvents(pb.ListEventsRequest(bot_id=bot.bot_id), timeout=5).events)
    assert [e.kind for e in reversed(events)] == [
        "bot_added",
        "bot_disabled",
        "bot_enabled",
        "settings_changed",
        "secret_rotated",
        "bot_deleted",
    ]
    assert {(e.actor, e.outcome, e.bot_id) for e in events} == {(f"telegram:{ALICE}", "done", bot.bot_id)}
    assert [e.at_unix_ms for e in reversed(events)] == [
        int((T0 + timedelta(seconds=s)).timestamp() * 1000) for s in range(6)
    ]
    settings = next(e for e in events if e.kind == "settings_changed")
    assert dict(settings.details) == {"change": "SetWelcome", "via": "anonymous", "role": "owner"}
    assert {e.details["role"] for e in events} == {"owner"}  # every action says the actor's role
    everything = str(events)
    assert "Olá" not in everything and TOKEN not in everything and TOKEN.split(":")[1] not in everything


def test_a_refused_admin_action_adds_nothing(rig: Rig) -> None:
    bot = rig.stub.RegisterBot(pb.RegisterBotRequest(owner_id=ALICE, token=TOKEN), timeout=5).bot
    with pytest.raises(grpc.RpcError):
        rig.stub.DeleteBot(pb.DeleteBotRequest(actor_id=ALICE + 1, bot_id=bot.bot_id), timeout=5)
    assert rig.kinds() == ["bot_added"]


def test_record_event_takes_a_refused_callback_stamped_by_the_registry(rig: Rig) -> None:
    request = pb.RecordEventRequest(
        kind="callback_refused", telegram_user_id=77, outcome="refused", details={"reason": "replayed"}
    )
    rig.stub.RecordEvent(request, timeout=5)
    (event,) = rig.stub.ListEvents(pb.ListEventsRequest(), timeout=5).events
    assert (event.kind, event.actor, event.bot_id, event.at_unix_ms) == (
        "callback_refused",
        "telegram:77",
        "",
        int(T0.timestamp() * 1000),
    )
    assert dict(event.details) == {"reason": "replayed", "via": "anonymous"}


@pytest.mark.parametrize(
    "request_",
    [
        pb.RecordEventRequest(kind="bot_deleted", telegram_user_id=77, outcome="done"),  # the registry's own kind
        pb.RecordEventRequest(kind="nonsense", outcome="done"),
        pb.RecordEventRequest(kind="callback_refused", outcome="maybe"),
        pb.RecordEventRequest(kind="callback_refused", outcome="refused", details={"token": "x"}),
        pb.RecordEventRequest(kind="callback_refused", outcome="refused", details={"data": TOKEN}),
        pb.RecordEventRequest(kind="callback_refused", outcome="refused", bot_id="b" * 40),
        pb.RecordEventRequest(kind="callback_refused", outcome="refused", telegram_user_id=-5),
    ],
)
def test_record_event_refuses_what_another_service_may_not_add(rig: Rig, request_: pb.RecordEventRequest) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        rig.stub.RecordEvent(request_, timeout=5)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert TOKEN not in (refused.value.details() or "")
    assert rig.kinds() == []


def test_list_events_filters_by_bot_and_time_and_limits(rig: Rig) -> None:
    for minute in range(5):
        rig.clock.advance(60)
        rig.stub.RecordEvent(
            pb.RecordEventRequest(kind="callback_refused", telegram_user_id=minute + 1, outcome="refused"), timeout=5
        )
    rig.stub.RecordEvent(pb.RecordEventRequest(kind="key_rotated", bot_id="some-bot", outcome="done"), timeout=5)
    listed = rig.stub.ListEvents(pb.ListEventsRequest(limit=2), timeout=5).events
    assert [e.actor for e in listed] == ["anonymous", "telegram:5"]  # newest first (same time: last written first)
    assert [e.kind for e in rig.stub.ListEvents(pb.ListEventsRequest(bot_id="some-bot"), timeout=5).events] == [
        "key_rotated"
    ]
    since = int((T0 + timedelta(minutes=4)).timestamp() * 1000)
    assert len(rig.stub.ListEvents(pb.ListEventsRequest(since_unix_ms=since), timeout=5).events) == 3
    with pytest.raises(grpc.RpcError) as bad:
        rig.stub.ListEvents(pb.ListEventsRequest(limit=1001), timeout=5)
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_a_trail_that_cannot_be_written_leaves_the_action_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for rig in start(tmp_path, trail=BrokenTrail()):
        bot = rig.stub.RegisterBot(pb.RegisterBotRequest(owner_id=ALICE, token=TOKEN), timeout=5).bot
        disabled = rig.stub.SetBotStatus(
            pb.SetBotStatusRequest(actor_id=ALICE, bot_id=bot.bot_id, enabled=False), timeout=5
        ).bot
        assert disabled.status == pb.BOT_STATUS_DISABLED
        assert [r.getMessage() for r in caplog.records].count("event not recorded") == 2
