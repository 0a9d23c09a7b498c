"""RunBroadcast: one batch of a running broadcast, driven by `run_broadcast` messages that re-enqueue themselves.

Each batch holds the broadcast's lock (one runner at a time, renewed by the lock keeper while it sends), reads the
next page of subscribers after the stored cursor (by user id, through the registry, which re-checks that the
bot is still the admin's), and sends to each active one: slot, claim, send, settle (src/tgm/domain/broadcast.py
says why the claim comes before the send). A crash anywhere leaves the message unacked; its redelivery resumes at
the cursor, skipping whoever already has a mark.

Replies first: a broadcast send takes a slot only while the bot's per-second budget has headroom above what is
reserved for interactive replies (`BroadcastSlots.acquire_spare`), so a bot's users keep getting answers at
their usual pace and the broadcast fills whatever the replies leave.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tgm.domain.administration.ports import BotAdmin, SubscriberStatus
from tgm.domain.bots import BotToken
from tgm.domain.broadcast import Broadcast, BroadcastState, BroadcastStore, Outcome, progress_text
from tgm.domain.callback_tokens import CallbackAction, CallbackTokens
from tgm.domain.effects import EffectIds
from tgm.domain.errors import (
    BotNotFound,
    DomainError,
    TelegramRequestFailed,
    TokenRejected,
    blocked_by_user,
    is_transient,
)
from tgm.domain.events import Event, EventKind, EventRecorder, telegram_actor
from tgm.domain.events import Outcome as EventOutcome
from tgm.domain.lane import LockKeeper
from tgm.domain.outbound import OutboundCall
from tgm.domain.ports import Clock, Locks, SentMessage
from tgm.domain.view import Button, Chat, Prerendered, Text

logger = logging.getLogger(__name__)


class BroadcastSlots(Protocol):
    def acquire_spare(self, bot_id: str, chat_id: int) -> float:
        """0 with a send slot taken, only while the bot's budget has headroom over the replies' reserve; else the
        seconds to wait (nothing taken)."""
        ...

    def pause(self, bot_id: str, seconds: float) -> None: ...


class BroadcastSender(Protocol):
    """Sends as the hosted bot (DirectOutbox): the token opened once per batch, before any slot is taken."""

    def token(self, bot_id: str) -> BotToken: ...

    def send(self, bot_id: str, call: OutboundCall, token: BotToken | None = None) -> SentMessage | None: ...


class BroadcastView(Protocol):
    """How a broadcast's messages look; the adapter's (docs/adr/007)."""

    def body(self, subscriber_id: int, body: Prerendered) -> OutboundCall:
        """The call that gives a subscriber the body. The worker sends it itself, as the hosted bot (BroadcastSender),
        to learn of each refusal."""
        ...

    def show_progress(self, chat: Chat, message_id: int, progress: Text, stop: Button | None) -> None:
        """Edits the admin's progress message (the manager bot's, through its outbox), with the Stop button while it
        runs."""
        ...


class BlockedReporter(Protocol):
    def blocked(self, bot_id: str, telegram_user_id: int) -> None:
        """Best effort: never raises."""
        ...


@dataclass(frozen=True)
class BroadcastPolicy:
    batch_size: int = 25  # recipients per batch: a cancel takes effect within one batch
    lock_ttl_seconds: float = 3.0  # short, renewed while the batch runs: a dead runner's lock frees itself soon
    max_inline_wait_seconds: float = 1.5  # a slot this close is waited for in place; a longer wait re-enqueues
    max_inline_waits: int = 3  # per recipient: replies using the whole budget send the batch back to the queue
    progress_interval_seconds: float = 3.0  # the progress message is edited at most this often
    retry_seconds: float = 2.0  # after a failure a retry may fix (registry or vault down)
    # Within a batch the cancel flag is read again every this many recipients (one store read each): a batch can
    # wait for send slots, and a Stop should not wait for the whole batch.
    cancel_check_every: int = 5


@dataclass(frozen=True)
class BroadcastStep:
    sent: int = 0
    run_again_in: float | None = None  # None: nothing more to do (finished, gone, or another runner has it)


class RunBroadcast:
    def __init__(
        self,
        store: BroadcastStore,
        admin: BotAdmin,
        sender: Callable[[], BroadcastSender],
        slots: BroadcastSlots,
        locks: Locks,
        view: BroadcastView,
        tokens: CallbackTokens,
        clock: Clock,
        blocked_users: BlockedReporter | None = None,
        policy: BroadcastPolicy | None = None,
        *,
        keeper: LockKeeper,
        sleep: Callable[[float], object] = time.sleep,
        events: EventRecorder | None = None,
    ) -> None:
        self._events = events
        self._store = store
        self._admin = admin
        self._sender = sender
        self._slots = slots
        self._locks = locks
        self._view = view
        self._tokens = tokens
        self._clock = clock
        self._blocked_users = blocked_users
        self._policy = policy or BroadcastPolicy()
        self._keeper = keeper  # the process's, run by its thread (src/tgm/host/lock_keeper.py)
        self._sleep = sleep

    def __call__(self, broadcast_id: str) -> BroadcastStep:
        ttl = self._policy.lock_ttl_seconds
        key = f"broadcast:{broadcast_id}"
        owner = self._locks.acquire(key, ttl)
        if owner is None:
            # Another runner has it (or a dead one's lock has not expired yet): look again after the TTL, so a
            # redelivered message never strands the broadcast.
            return BroadcastStep(run_again_in=ttl)
        try:
            with self._keeper.hold(lambda: self._locks.renew(key, owner, ttl), ttl):
                return self._batch(broadcast_id)
        finally:
            self._locks.release(key, owner)

    def _batch(self, broadcast_id: str) -> BroadcastStep:
        broadcast = self._store.get(broadcast_id)
        if broadcast is None or broadcast.state is not BroadcastState.RUNNING:
            return BroadcastStep()
        if broadcast.cancel_requested:
            return self._finish(broadcast, BroadcastState.CANCELLED, reason="requested")
        try:
            # The registry checks, every batch, that the bot is still this admin's (a revoked co-admin stops here).
            page = self._admin.list_subscribers(
                broadcast.admin_id, broadcast.bot_id, broadcast.cursor, self._policy.batch_size
            )
            token = self._sender().token(broadcast.bot_id) if page else None
        except BotNotFound:
            logger.warning("broadcast stopped: the bot is no longer the admin's", extra={"bot_id": broadcast.bot_id})
            return self._finish(broadcast, BroadcastState.CANCELLED, reason="access_lost")
        except DomainError as error:
            logger.warning("broadcast batch postponed", extra={"error": type(error).__name__})
            return BroadcastStep(run_again_in=self._policy.retry_seconds)
        sent = 0
        for position, subscriber in enumerate(page):
            if position and position % self._policy.cancel_check_every == 0 and self._cancel_requested(broadcast.id):
                return self._finish(broadcast, BroadcastState.CANCELLED, sent, reason="requested")
            user_id = subscriber.telegram_user_id
            if subscriber.status is not SubscriberStatus.ACTIVE:
                self._store.advance(broadcast.id, user_id)
                continue
            try:
                outcome, wait = self._send_one(broadcast, user_id, token)
            except TokenRejected:
                # Revoked or replaced in BotFather: every other send would be refused too.
                logger.warning(
                    "broadcast stopped: Telegram rejected the bot's token", extra={"bot_id": broadcast.bot_id}
                )
                self._store.release(broadcast.id, user_id)
                return self._finish(broadcast, BroadcastState.CANCELLED, sent, reason="token_rejected")
            if wait is not None:
                self._progress(broadcast.id)
                return BroadcastStep(sent, run_again_in=wait)
            sent += outcome is Outcome.SENT
        if len(page) < self._policy.batch_size:
            latest = self._store.get(broadcast.id) or broadcast
            # A cancel that came while the last page went out: the admin asked to stop, so it ends as cancelled.
            if latest.cancel_requested:
                return self._finish(latest, BroadcastState.CANCELLED, sent, reason="requested")
            return self._finish(latest, BroadcastState.DONE, sent)
        self._progress(broadcast.id)
        return BroadcastStep(sent, run_again_in=0.0)

    def _send_one(
        self, broadcast: Broadcast, user_id: int, token: BotToken | None
    ) -> tuple[Outcome | None, float | None]:
        """(outcome, None) once the recipient is settled or skipped; (None, seconds) to stop the batch and resume
        after that long."""
        earlier = self._store.claim(broadcast.id, user_id)
        if earlier is Outcome.SENDING:
            # Claimed by a run that died before settling it: the send may have happened. At most once: failed.
            self._store.settle(broadcast.id, user_id, Outcome.FAILED)
            return Outcome.FAILED, None
        if earlier is not None:
            self._store.advance(broadcast.id, user_id)
            return None, None
        wait = self._slots.acquire_spare(broadcast.bot_id, user_id)
        for _ in range(self._policy.max_inline_waits):
            if not 0 < wait <= self._policy.max_inline_wait_seconds:
                break
            self._sleep(wait)
            wait = self._slots.acquire_spare(broadcast.bot_id, user_id)
        if wait > 0:
            self._store.release(broadcast.id, user_id)
            return None, wait
        try:
            self._sender().send(broadcast.bot_id, self._view.body(user_id, Prerendered(broadcast.text)), token)
        except TokenRejected:
            raise
        except TelegramRequestFailed as error:
            if error.retry_after is not None:  # not performed: the same recipient again after the pause
                self._slots.pause(broadcast.bot_id, float(error.retry_after))
                self._store.release(broadcast.id, user_id)
                return None, float(error.retry_after)
            if blocked_by_user(error) and self._blocked_users is not None:
                self._blocked_users.blocked(broadcast.bot_id, user_id)
            outcome = Outcome.BLOCKED if blocked_by_user(error) else Outcome.FAILED
            self._store.settle(broadcast.id, user_id, outcome)
            return outcome, None
        except Exception as error:
            # Unreachable, 5xx, a timeout: Telegram may have delivered it. At most once: counted failed, not retried.
            logger.warning(
                "broadcast send failed",
                extra={"bot_id": broadcast.bot_id, "error": type(error).__name__, "transient": is_transient(error)},
            )
            self._store.settle(broadcast.id, user_id, Outcome.FAILED)
            return Outcome.FAILED, None
        self._store.settle(broadcast.id, user_id, Outcome.SENT)
        return Outcome.SENT, None

    def _cancel_requested(self, broadcast_id: str) -> bool:
        latest = self._store.get(broadcast_id)
        return latest is None or latest.cancel_requested

    def _finish(self, broadcast: Broadcast, state: BroadcastState, sent: int = 0, reason: str = "") -> BroadcastStep:
        self._store.finish(broadcast.id, state, self._clock.now().timestamp())
        final = self._store.get(broadcast.id)
        if final is not None:
            self._edit(final, stop=None)
            # Once: a redelivered batch finds the broadcast finished and stops before this.
            end = reason or state.value
            record_broadcast(self._events, self._clock, EventKind.BROADCAST_FINISHED, final.admin_id, final, end=end)
        return BroadcastStep(sent)

    def _progress(self, broadcast_id: str) -> None:
        if not self._store.progress_due(broadcast_id, self._policy.progress_interval_seconds):
            return
        latest = self._store.get(broadcast_id)
        if latest is not None and latest.state is BroadcastState.RUNNING:
            self._edit(latest, stop=stop_button(self._tokens, latest))

    def _edit(self, broadcast: Broadcast, stop: Button | None) -> None:
        """Edits the admin's progress message (through the manager bot's outbox: flood control, retries)."""
        if not broadcast.message_id:
            return
        try:
            text = progress_text(broadcast, self._clock.now().timestamp())
            # Each progress edit is new (never a re-run of an earlier one): its own fresh effect id.
            chat = Chat(broadcast.manager_id, broadcast.chat_id, broadcast.lang, EffectIds.unrepeatable())
            self._view.show_progress(chat, broadcast.message_id, text, stop)
        except Exception as error:  # the progress is a view: the broadcast goes on without it
            logger.warning("broadcast progress not shown", extra={"error": type(error).__name__})


def stop_button(tokens: CallbackTokens, broadcast: Broadcast) -> Button:
    """The progress message's signed Stop button (the broadcast id in the button's reference field)."""
    action = CallbackAction.BROADCAST_CANCEL
    data = tokens.sign(action, broadcast.id, broadcast.admin_id, broadcast.chat_id)
    return Button(Text("btn_broadcast_stop"), action, data)


def record_broadcast(
    events: EventRecorder | None,
    clock: Clock,
    kind: EventKind,
    actor_id: int,
    broadcast: Broadcast,
    **details: str,
) -> None:
    """A broadcast's line in the event trail: its id and counts (only the total before it ran), never its text.
    Best effort: a trail that cannot take it never stops the broadcast (src/tgm/domain/events.py)."""
    if events is None:
        return
    counts = {"total": str(broadcast.total)}
    if kind is not EventKind.BROADCAST_STARTED:
        counts.update(sent=str(broadcast.sent), failed=str(broadcast.failed), blocked=str(broadcast.blocked))
    try:
        event = Event(
            clock.now(),
            kind,
            telegram_actor(actor_id),
            broadcast.bot_id,
            EventOutcome.DONE,
            {"broadcast": broadcast.id, **counts, **details},
        )
        events.record(event)
    except Exception as error:
        logger.warning("broadcast event not recorded", extra={"kind": kind.value, "error": type(error).__name__})
