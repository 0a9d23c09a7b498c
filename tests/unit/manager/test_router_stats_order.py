"""UpdateRouter records a managed bot's interaction after the bot's handler, and never lets it fail the reply."""

from __future__ import annotations

from typing import Any

from libs.domain.bots import Bot
from libs.domain.updates import UpdateEnvelope
from services.dispatcher.manager.router import UpdateRouter
from tests.unit.manager.test_manager_bot import BOT_ID, make_bot

UPDATE = {"update_id": 1, "message": {"from": {"id": 9, "is_bot": False, "language_code": "de"}, "chat": {"id": 9}}}


class Bots:
    def get_bot(self, bot_id: str) -> Bot | None:
        return make_bot()


class Admin:
    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log = log
        self.fail = fail
        self.recorded: list[tuple[str, int, str | None]] = []

    def record_interaction(self, bot_id: str, telegram_user_id: int, language_code: str | None) -> None:
        self.log.append("record")
        if self.fail:
            raise RuntimeError("registry down")
        self.recorded.append((bot_id, telegram_user_id, language_code))


def _router(log: list[str], admin: Admin) -> UpdateRouter:
    def managed(envelope: UpdateEnvelope) -> Any:
        log.append("handler")
        return "answered"

    return UpdateRouter(Bots(), manager=None, managed=managed, admin=admin)  # type: ignore[arg-type]


def test_the_interaction_is_recorded_after_the_handler() -> None:
    log: list[str] = []
    admin = Admin(log)
    assert _router(log, admin)(UpdateEnvelope(BOT_ID, 1, 0.0, "r", UPDATE)) == "answered"
    assert log == ["handler", "record"]
    assert admin.recorded == [(BOT_ID, 9, "de")]


def test_a_failed_record_does_not_affect_the_reply() -> None:
    log: list[str] = []
    assert _router(log, Admin(log, fail=True))(UpdateEnvelope(BOT_ID, 1, 0.0, "r", UPDATE)) == "answered"
    assert log == ["handler", "record"]
