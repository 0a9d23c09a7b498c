"""Refused manager-bot buttons reach the event trail; the trail failing never gets in the admin's way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.unit.manager.test_manager_bot import ADMIN, BOT_ID, NOW, Harness, harness
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.events import Event, EventKind, Outcome


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)
    fail: bool = False

    def record(self, event: Event) -> None:
        if self.fail:
            raise RuntimeError("registry down")
        self.events.append(event)


def with_trail(recorder: Recorder, **kwargs: Any) -> Harness:
    return harness(events=recorder, **kwargs)


def test_an_invalid_button_is_recorded_with_its_presser_and_no_bot() -> None:
    recorder = Recorder()
    h = with_trail(recorder)
    good = h.sign(CallbackAction.DELETE_DO)
    assert h.press(good, user=ADMIN + 1, chat=ADMIN).action == "manager:callback_invalid"
    h.clock.advance(901)
    assert h.press(good).action == "manager:callback_invalid"  # expired
    assert [(e.kind, e.actor, e.bot_id, e.outcome, dict(e.details)) for e in recorder.events] == [
        (EventKind.CALLBACK_REFUSED, f"telegram:{ADMIN + 1}", None, Outcome.REFUSED, {"reason": "invalid"}),
        (EventKind.CALLBACK_REFUSED, f"telegram:{ADMIN}", None, Outcome.REFUSED, {"reason": "invalid"}),
    ]
    assert recorder.events[0].at == NOW and good not in str(recorder.events)


def test_a_replayed_destructive_button_is_recorded_with_its_bot_and_action() -> None:
    recorder = Recorder()
    h = with_trail(recorder, one_time=True)
    h.message("/mybots")
    delete = h.sign(CallbackAction.DELETE_DO)
    h.press(delete)
    assert recorder.events == []  # an accepted press is no security event
    assert h.press(delete).action == "manager:callback_used"
    (refused,) = recorder.events
    assert (refused.bot_id, dict(refused.details)) == (BOT_ID, {"reason": "replayed", "action": "delete_do"})


def test_a_button_pressed_by_someone_not_allowed_is_recorded() -> None:
    recorder = Recorder()
    h = with_trail(recorder, allowed=frozenset({999}))
    assert h.press(h.sign(CallbackAction.LIST, None)).action == "manager:not_allowed"
    assert [dict(e.details) for e in recorder.events] == [{"reason": "not_allowed", "action": "list"}]


def test_a_failing_trail_leaves_the_answer_as_it_was() -> None:
    h = with_trail(Recorder(fail=True))
    assert h.press("nonsense").action == "manager:callback_invalid"
    assert h.outbox.answers == ["⚠️ Essa ação não é válida mais."]
