"""/broadcast in the manager bot: ask for the text, preview it with signed buttons, start or stop it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from tgm.domain.bots import Bot
from tgm.domain.broadcast import (
    MAX_BROADCAST_CHARS,
    Broadcast,
    BroadcastState,
    StartResult,
    progress_text,
)
from tgm.domain.callback_tokens import CallbackAction
from tgm.domain.errors import BotNotFound, DomainError
from tgm.domain.events import EventKind
from tgm.domain.manager_bot.commands import USAGE_KEYS
from tgm.domain.manager_bot.conversation import AWAIT_BROADCAST
from tgm.domain.manager_bot.dependencies import Ctx
from tgm.domain.manager_bot.registry_calls import RegistryCalls
from tgm.domain.use_cases.broadcast import record_broadcast
from tgm.domain.use_cases.handle_update import HandleOutcome
from tgm.domain.view import Buttons, Prerendered, Text

BROADCAST_CANCEL_WORDS = frozenset({"cancel", "cancelar"})

logger = logging.getLogger(__name__)


class BroadcastCommands(RegistryCalls):
    """The admin's side of a broadcast; the sending is the dispatcher's broadcast worker."""

    def _broadcast_target(self, ctx: Ctx, ref: str) -> tuple[Bot, int] | HandleOutcome:
        """The actor's bot named by `ref` and its active subscribers, through the same registry check as
        /subscribers (a bot that is not the actor's is "not found"), or the outcome after saying why not."""
        bot_id = self._resolve_or_say(ctx, ref)
        if isinstance(bot_id, HandleOutcome):
            return bot_id
        try:
            bot, stats = self._admin.subscriber_stats(ctx.user_id, bot_id)
        except BotNotFound:
            self._say(ctx, "mgr_bot_not_found")
            return HandleOutcome("manager:not_found", replied=True)
        except DomainError:
            self._say(ctx, "mgr_unavailable")
            return HandleOutcome("manager:unavailable", replied=True)
        return bot, stats.active

    def _broadcast_command(self, ctx: Ctx, arg: str) -> HandleOutcome:
        words = arg.split()
        stopping = len(words) == 2 and words[0].lower() in BROADCAST_CANCEL_WORDS
        if self._broadcasts is None or not (len(words) == 1 or stopping):
            self._say(ctx, "mgr_usage", usage=Text(USAGE_KEYS["/broadcast"]))
            return HandleOutcome("manager:usage", replied=True)
        target = self._broadcast_target(ctx, words[-1])
        if isinstance(target, HandleOutcome):
            return target
        bot, active = target
        running = self._broadcasts.running_for(bot.id)
        if stopping:
            if running is None or not self._broadcasts.request_cancel(running, self._clock.now().timestamp()):
                self._say(ctx, "mgr_broadcast_none_running", username=bot.username)
                return HandleOutcome("manager:broadcast_none", replied=True)
            stopped = self._broadcasts.get(running)
            if stopped is not None:
                record_broadcast(self._events, self._clock, EventKind.BROADCAST_CANCELLED, ctx.user_id, stopped)
            self._wake_runner(running)
            self._say(ctx, "mgr_broadcast_stopping", username=bot.username)
            return HandleOutcome("manager:broadcast_cancel", replied=True)
        if running is not None:
            self._say(ctx, "mgr_broadcast_busy", username=bot.username)
            return HandleOutcome("manager:broadcast_busy", replied=True)
        if active <= 0:
            self._say(ctx, "mgr_broadcast_no_subscribers", username=bot.username)
            return HandleOutcome("manager:broadcast_nobody", replied=True)
        state = AWAIT_BROADCAST + bot.id
        self._conversations.set(ctx.chat_id, ctx.user_id, state, self._config.conversation_ttl_seconds)
        self._say(ctx, "mgr_broadcast_ask", username=bot.username, active=active)
        return HandleOutcome("manager:await_broadcast", replied=True)

    def _broadcast_draft(self, ctx: Ctx, bot_id: str, message: dict[str, Any]) -> HandleOutcome:
        """The admin's message: stored as a draft, shown as the subscribers will see it, with signed buttons."""
        text = message.get("text")
        if self._broadcasts is None or not isinstance(text, str) or not text.strip():
            self._say(ctx, "mgr_broadcast_empty")
            return HandleOutcome("manager:broadcast_empty", replied=True)
        if len(text) > MAX_BROADCAST_CHARS:
            self._say(ctx, "mgr_broadcast_too_long")
            return HandleOutcome("manager:broadcast_too_long", replied=True)
        target = self._broadcast_target(ctx, bot_id)
        if isinstance(target, HandleOutcome):
            return target
        bot, active = target
        draft = Broadcast(
            id=str(uuid.uuid4()),
            bot_id=bot.id,
            admin_id=ctx.user_id,
            chat_id=ctx.chat_id,
            manager_id=ctx.manager_id,
            username=bot.username,
            lang=ctx.lang,
            text=self._view.broadcast_body(text, message.get("entities")).text,
        )
        self._broadcasts.create(draft, self._config.conversation_ttl_seconds)
        self._show(ctx, Prerendered(draft.text))  # the preview: exactly what the subscribers will get
        buttons = [
            self._button(ctx, "btn_broadcast_send", CallbackAction.BROADCAST_CONFIRM, draft.id),
            self._button(ctx, "btn_cancel", CallbackAction.BROADCAST_CANCEL, draft.id),
        ]
        self._say(ctx, "mgr_broadcast_preview", Buttons.of([buttons]), username=bot.username, active=active)
        return HandleOutcome("manager:broadcast_preview", replied=True)

    def _broadcast_button(self, ctx: Ctx, action: CallbackAction, broadcast_id: str, message_id: int) -> HandleOutcome:
        """Confirm (once: a one-time button, and a draft starts once) or cancel a broadcast of the presser's."""
        found = self._broadcasts.get(broadcast_id) if self._broadcasts is not None and broadcast_id else None
        if found is None or found.admin_id != ctx.user_id or found.chat_id != ctx.chat_id:
            self._say(ctx, "mgr_broadcast_gone")
            return HandleOutcome("manager:broadcast_gone", replied=True)
        assert self._broadcasts is not None
        now = self._clock.now().timestamp()
        if action is CallbackAction.BROADCAST_CANCEL:
            if not self._broadcasts.request_cancel(found.id, now):
                self._say(ctx, "mgr_broadcast_gone")
                return HandleOutcome("manager:broadcast_gone", replied=True)
            if found.state is BroadcastState.DRAFT:
                self._say(ctx, "mgr_broadcast_discarded")
                return HandleOutcome("manager:broadcast_discarded", replied=True)
            record_broadcast(self._events, self._clock, EventKind.BROADCAST_CANCELLED, ctx.user_id, found)
            self._wake_runner(found.id)
            self._say(ctx, "mgr_broadcast_stopping", username=found.username)
            return HandleOutcome("manager:broadcast_cancel", replied=True)
        if found.state is not BroadcastState.DRAFT or not message_id or self._broadcast_scheduler is None:
            self._say(ctx, "mgr_broadcast_gone")
            return HandleOutcome("manager:broadcast_gone", replied=True)
        target = self._broadcast_target(ctx, found.bot_id)  # still the presser's bot, right now
        if isinstance(target, HandleOutcome):
            return target
        _bot, active = target
        started = self._broadcasts.start(found.id, message_id, active, now)
        if started is not StartResult.STARTED:
            busy = started is StartResult.BUSY
            self._say(ctx, "mgr_broadcast_busy" if busy else "mgr_broadcast_gone", username=found.username)
            return HandleOutcome("manager:broadcast_busy" if busy else "manager:broadcast_gone", replied=True)
        running = self._broadcasts.get(found.id) or found
        # The progress message, as the broadcast worker keeps it (src/tgm/domain/use_cases/broadcast.py): in the
        # draft's language, with its Stop button.
        progress = Ctx(ctx.manager_id, ctx.chat_id, ctx.user_id, running.lang, ctx.effects)
        stop = self._button(progress, "btn_broadcast_stop", CallbackAction.BROADCAST_CANCEL, running.id)
        self._view.edit(progress.chat, message_id, progress_text(running, now), Buttons.of([[stop]]))
        self._broadcast_scheduler.schedule(found.id)
        record_broadcast(self._events, self._clock, EventKind.BROADCAST_STARTED, ctx.user_id, running)
        return HandleOutcome("manager:broadcast_started", replied=True)

    def _wake_runner(self, broadcast_id: str) -> None:
        """A Stop also schedules a runner: if the one started with the broadcast was lost (the broker failed after
        the start, the confirm button is spent), the broadcast would otherwise stay "running" and keep the bot
        busy for ever. A second runner is harmless: batches run under the broadcast's lock, recipients are marked."""
        if self._broadcast_scheduler is None:
            return
        try:
            self._broadcast_scheduler.schedule(broadcast_id)
        except Exception as error:  # the cancel flag is stored; the running runner (if any) still sees it
            logger.warning("could not schedule the broadcast's runner", extra={"error": type(error).__name__})
