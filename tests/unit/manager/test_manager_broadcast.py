"""/broadcast @bot in the manager bot: ask, preview, signed confirm, progress message, cancel; and bad input
(unknown bot, another admin's bot, empty message, stale/forged/replayed buttons): a clear reply, nothing started."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.unit.manager.test_manager_bot import ADMIN, BOT_ID, MANAGER, FakeOutbox, Harness, harness
from tgm.domain.administration.ports import SubscriberStats
from tgm.domain.broadcast import BroadcastState
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.manager_bot.bot import ManagerBot
from tgm.domain.manager_bot.dependencies import ManagerConfig
from tgm.domain.updates import UpdateEnvelope
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.services.dispatcher.adapters.broadcasts import InMemoryBroadcastStore
from tgm.services.dispatcher.manager_bot.state import (
    InMemoryAdminSessions,
    InMemoryConversationStore,
    InMemoryUsedButtons,
)
from tgm.services.dispatcher.presentation.manager_view import TelegramManagerView

MALLORY = 666


@dataclass
class EditingOutbox(FakeOutbox):
    edits: list[dict[str, Any]] = field(default_factory=list)

    def edit_message_text(self, bot_id: str, chat_id: int, message_id: int, text: str, **kwargs: Any) -> None:
        self.edits.append({"bot_id": bot_id, "chat_id": chat_id, "message_id": message_id, "text": text, **kwargs})


@dataclass
class FakeScheduler:
    scheduled: list[str] = field(default_factory=list)

    def schedule(self, broadcast_id: str, delay_seconds: float = 0.0) -> None:
        self.scheduled.append(broadcast_id)


class BroadcastHarness(Harness):
    store: InMemoryBroadcastStore
    scheduler: FakeScheduler

    def write(self, text: str, entities: list[dict[str, Any]] | None = None, user: int = ADMIN) -> HandleOutcome:
        """A message with entities (or none: a photo without caption when text is empty)."""
        self.update_id += 1
        message: dict[str, Any] = {
            "message_id": 100 + self.update_id,
            "from": {"id": user, "is_bot": False, "first_name": "A", "language_code": "en"},
            "chat": {"id": user, "type": "private"},
        }
        if text:
            message["text"] = text
            message["entities"] = entities or []
        else:
            message["photo"] = [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
        update = {"update_id": self.update_id, "message": message}
        return self.bot(UpdateEnvelope(MANAGER, self.update_id, 0.0, "r", update))

    def buttons(self) -> list[dict[str, str]]:
        return list(self.outbox.sent[-1]["reply_markup"]["inline_keyboard"][0])


def broadcast_harness() -> BroadcastHarness:
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
        clock=base.clock,
        broadcasts=store,
        broadcast_scheduler=scheduler,
    )
    h = BroadcastHarness(bot, base.admin, outbox, base.tokens, base.clock)
    h.store, h.scheduler = store, scheduler
    return h


def test_the_whole_flow_ask_preview_confirm_and_the_progress_message() -> None:
    h = broadcast_harness()
    assert h.message("/broadcast @shop_bot", lang="en").action == "manager:await_broadcast"
    assert h.last.startswith("📣 Send me the message for the 6 active subscribers of @shop_bot")
    outcome = h.write("Sale <today> & more", [{"type": "bold", "offset": 0, "length": 4}])
    assert outcome.action == "manager:broadcast_preview"
    preview = h.outbox.sent[-2]
    assert preview["text"] == "<b>Sale</b> &lt;today&gt; &amp; more" and preview["parse_mode"] == "HTML"
    assert h.last == "👆 This is how it will look. Send it to the 6 active subscribers of @shop_bot?"
    send, cancel = h.buttons()
    assert cancel["text"] == "✖️ Cancel"
    claim = h.tokens.verify(send["callback_data"], ADMIN, ADMIN)
    assert claim is not None and claim.action is CallbackAction.BROADCAST_CONFIRM and claim.bot_id is not None
    assert h.scheduler.scheduled == []  # nothing goes out before the confirm
    assert h.store.get(claim.bot_id).state is BroadcastState.DRAFT  # type: ignore[union-attr]
    assert h.press(send["callback_data"]).action == "manager:broadcast_started"
    assert h.scheduler.scheduled == [claim.bot_id]
    started = h.store.get(claim.bot_id)
    assert started is not None and (started.state, started.total, started.message_id) == (BroadcastState.RUNNING, 6, 1)
    assert started.text == preview["text"] and started.bot_id == BOT_ID
    [edit] = h.outbox.edits  # the confirm prompt becomes the live progress message, with a signed stop button
    assert (edit["chat_id"], edit["message_id"]) == (ADMIN, 1) and "Remaining: 6 of 6" in edit["text"]
    [[stop]] = edit["reply_markup"]["inline_keyboard"]
    assert h.press(stop["callback_data"]).action == "manager:broadcast_cancel"
    assert h.store.get(claim.bot_id).cancel_requested  # type: ignore[union-attr]


def test_confirm_acts_once_and_a_forged_or_stale_button_starts_nothing() -> None:
    h = broadcast_harness()
    h.message("/broadcast @shop_bot")
    h.write("hello")
    send, _ = h.buttons()
    claim = h.tokens.verify(send["callback_data"], ADMIN, ADMIN)
    assert claim is not None and claim.bot_id is not None
    # Another user pressing it (or in another chat): the signature binds the admin and the chat.
    assert h.press(send["callback_data"], user=MALLORY, chat=MALLORY).action == "manager:callback_invalid"
    # A button Mallory signed naming Alice's draft: a valid signature, not Mallory's broadcast.
    forged = h.tokens.sign(CallbackAction.BROADCAST_CONFIRM, claim.bot_id, MALLORY, MALLORY)
    assert h.press(forged, user=MALLORY, chat=MALLORY).action == "manager:broadcast_gone"
    assert h.scheduler.scheduled == []
    h.clock.advance(901)  # past the button's lifetime
    assert h.press(send["callback_data"]).action == "manager:callback_invalid"
    assert h.scheduler.scheduled == [] and h.store.running_for(BOT_ID) is None


def test_a_second_press_and_a_lapsed_draft_are_refused() -> None:
    h = broadcast_harness()
    h.message("/broadcast @shop_bot")
    h.write("hello")
    send, _ = h.buttons()
    assert h.press(send["callback_data"]).action == "manager:broadcast_started"
    assert h.press(send["callback_data"]).action == "manager:callback_used"
    assert len(h.scheduler.scheduled) == 1
    h2 = broadcast_harness()
    h2.message("/broadcast @shop_bot")
    h2.write("hello")
    send, _ = h2.buttons()
    h2.clock.advance(601)  # the draft lapsed with the conversation TTL (the button itself still valid)
    assert h2.press(send["callback_data"]).action == "manager:broadcast_gone"
    assert "no longer pending" in h2.last or "não está mais pendente" in h2.last
    assert h2.scheduler.scheduled == []


def test_cancel_before_confirm_discards_the_draft() -> None:
    h = broadcast_harness()
    h.message("/broadcast @shop_bot")
    h.write("hello")
    send, cancel = h.buttons()
    assert h.press(cancel["callback_data"]).action == "manager:broadcast_discarded"
    assert h.press(send["callback_data"]).action == "manager:broadcast_gone"
    assert h.scheduler.scheduled == []


def test_unknown_bot_another_admins_bot_and_bad_usage_get_clear_replies() -> None:
    h = broadcast_harness()
    assert h.message("/broadcast @nobody_bot").action == "manager:not_found"
    assert h.last == "❓ Bot não encontrado entre os seus. Veja /mybots."
    assert h.message(f"/broadcast {BOT_ID}", user=MALLORY).action == "manager:not_found"  # the registry refuses
    assert ("subscribers", MALLORY, BOT_ID) in h.admin.calls
    for text in ("/broadcast", "/broadcast @shop_bot extra", "/broadcast stop @shop_bot"):
        assert h.message(text).action == "manager:usage"
        assert "/broadcast @bot" in h.last
    assert h.store.running_for(BOT_ID) is None


def test_an_empty_message_or_a_photo_is_refused_and_nothing_is_drafted() -> None:
    h = broadcast_harness()
    h.message("/broadcast @shop_bot")
    assert h.write("").action == "manager:broadcast_empty"
    assert h.last == "❌ The message is empty: send a text. Start again with /broadcast @bot."
    h.message("/broadcast @shop_bot")
    assert h.write("   ").action == "manager:broadcast_empty"
    h.message("/broadcast @shop_bot")
    assert h.write("x" * 4097).action == "manager:broadcast_too_long"
    assert not any(m.get("reply_markup") for m in h.outbox.sent)


def test_no_active_subscribers_one_broadcast_at_a_time_and_cancel_by_command() -> None:
    h = broadcast_harness()
    stats = h.admin.subscriber_stats

    def nobody(actor_id: int, bot_id: str) -> Any:
        bot, _ = stats(actor_id, bot_id)
        return bot, SubscriberStats(total=2, blocked_bot=2)

    h.admin.subscriber_stats = nobody  # type: ignore[method-assign]
    assert h.message("/broadcast @shop_bot").action == "manager:broadcast_nobody"
    h.admin.subscriber_stats = stats  # type: ignore[method-assign]
    assert h.message("/broadcast cancel @shop_bot").action == "manager:broadcast_none"
    h.message("/broadcast @shop_bot")
    h.write("hello")
    send, _ = h.buttons()
    h.press(send["callback_data"])
    assert h.message("/broadcast @shop_bot").action == "manager:broadcast_busy"
    assert h.message("/broadcast cancelar @shop_bot").action == "manager:broadcast_cancel"
    running = h.store.running_for(BOT_ID)
    assert running is not None and h.store.get(running).cancel_requested  # type: ignore[union-attr]
    assert h.message("/broadcast cancel @shop_bot", user=MALLORY).action == "manager:not_found"


def test_a_stop_schedules_a_runner_so_a_broadcast_whose_runner_was_lost_still_ends() -> None:
    h = broadcast_harness()
    h.message("/broadcast @shop_bot")
    h.write("hello")
    send, _ = h.buttons()
    h.press(send["callback_data"])
    running = h.store.running_for(BOT_ID)
    assert running is not None and h.scheduler.scheduled == [running]
    h.scheduler.scheduled.clear()  # as if that runner's message was lost (the broker failed after the start)
    assert h.message("/broadcast cancel @shop_bot").action == "manager:broadcast_cancel"
    assert h.scheduler.scheduled == [running]  # a runner will see the Stop and finish it
    [[stop]] = h.outbox.edits[-1]["reply_markup"]["inline_keyboard"]
    assert h.press(stop["callback_data"]).action == "manager:broadcast_cancel"
    assert h.scheduler.scheduled == [running, running]


def test_broadcast_is_listed_in_the_help() -> None:
    h = broadcast_harness()
    h.message("/help", lang="en")
    assert "/broadcast @bot" in h.last
