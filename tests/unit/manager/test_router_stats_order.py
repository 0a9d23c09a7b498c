"""UpdateRouter counts a managed bot's interaction after the bot's handler, through the recorder (no registry call
per update), and never lets it fail the reply."""

from __future__ import annotations

from typing import Any

from tests.unit.manager.test_manager_bot import BOT_ID, make_bot
from tgm.domain.bots import Bot
from tgm.domain.updates import UpdateEnvelope
from tgm.services.dispatcher.manager_bot.router import UpdateRouter

UPDATE = {"update_id": 1, "message": {"from": {"id": 9, "is_bot": False, "language_code": "de"}, "chat": {"id": 9}}}


class Bots:
    def get_bot(self, bot_id: str) -> Bot | None:
        return make_bot()


class Recorder:
    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log = log
        self.fail = fail
        self.recorded: list[tuple[str, int, str | None]] = []

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        self.log.append("record")
        if self.fail:
            raise RuntimeError("redis down")
        self.recorded.append((bot_id, telegram_user_id, language_code))


class Admin:
    """A registry client: with a recorder wired, the router must not call it for stats."""

    def __init__(self) -> None:
        self.calls = 0

    def record_interaction(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        self.calls += 1


def _router(log: list[str], recorder: Recorder, admin: Admin | None = None) -> UpdateRouter:
    def managed(envelope: UpdateEnvelope) -> Any:
        log.append("handler")
        return "answered"

    return UpdateRouter(Bots(), manager=None, managed=managed, admin=admin, recorder=recorder)  # type: ignore[arg-type]


def test_the_interaction_is_recorded_after_the_handler() -> None:
    log: list[str] = []
    recorder = Recorder(log)
    assert _router(log, recorder)(UpdateEnvelope(BOT_ID, 1, 0.0, "r", UPDATE)) == "answered"
    assert log == ["handler", "record"]
    assert recorder.recorded == [(BOT_ID, 9, "de")]


def test_a_failed_record_does_not_affect_the_reply() -> None:
    log: list[str] = []
    assert _router(log, Recorder(log, fail=True))(UpdateEnvelope(BOT_ID, 1, 0.0, "r", UPDATE)) == "answered"
    assert log == ["handler", "record"]


def test_with_a_recorder_no_registry_call_is_made_per_update() -> None:
    log: list[str] = []
    admin = Admin()
    router = _router(log, Recorder(log), admin)
    for update_id in range(5):
        router(UpdateEnvelope(BOT_ID, update_id, 0.0, "r", {**UPDATE, "update_id": update_id}))
    assert admin.calls == 0
    assert log.count("record") == 5


def test_updates_from_bots_and_without_a_sender_are_not_counted() -> None:
    log: list[str] = []
    recorder = Recorder(log)
    router = _router(log, recorder)
    from_bot = {"update_id": 2, "message": {"from": {"id": 5, "is_bot": True}, "chat": {"id": 5}}}
    no_sender = {"update_id": 3, "poll": {"id": "p"}}
    router(UpdateEnvelope(BOT_ID, 2, 0.0, "r", from_bot))
    router(UpdateEnvelope(BOT_ID, 3, 0.0, "r", no_sender))
    assert recorder.recorded == []


def test_a_blocked_users_update_is_counted_as_refused_and_not_as_an_interaction() -> None:
    from tgm.domain.use_cases.handle_update import HandleOutcome
    from tgm.observability.metrics import INBOUND_REFUSED

    blocked_before = INBOUND_REFUSED.labels("blocked")._value.get()
    log: list[str] = []
    recorder = Recorder(log)
    router = UpdateRouter(
        Bots(),  # type: ignore[arg-type]
        manager=None,
        managed=lambda envelope: HandleOutcome("ignored:blocked"),
        recorder=recorder,
    )
    assert router(UpdateEnvelope(BOT_ID, 1, 0.0, "r", UPDATE)).action == "ignored:blocked"
    assert recorder.recorded == []
    assert INBOUND_REFUSED.labels("blocked")._value.get() == blocked_before + 1
