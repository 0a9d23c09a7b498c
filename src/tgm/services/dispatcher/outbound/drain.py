"""DrainOutbox: sends a lane's queued calls in order, within Telegram's limits, each one once.

A drain takes the lane's lock (the loop every lane shares: src/tgm/domain/lane.py), asks the shared SendLimiter for a
slot (≤ 30/s per bot, ≤ 1/s per private chat, ≤ 20/min per group) and, when there is none, asks to be run again
after the wait instead of sleeping; a 429 from Telegram does the same with `retry_after`. Each call is marked sent
(by id) right after Telegram accepted it and only then popped, so a redelivered drain does not send it twice.
What stays at-least-once: a crash between Telegram's answer and the mark, or a timeout on a send that Telegram did
perform (the retry sends again).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tgm.domain.errors import BotNotFound, TelegramRequestFailed, is_transient
from tgm.domain.inbox import InboxLinks
from tgm.domain.lane import BatchOutcome, LockKeeper, drain_lane
from tgm.domain.ports import DeadLetters, Locks
from tgm.domain.retry import RetrySchedule
from tgm.domain.use_cases.drain_chat import describe_failure
from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox
from tgm.services.dispatcher.outbound.after_send import link_sent, report_if_blocked
from tgm.services.dispatcher.outbound.calls import QueuedCall, refusal_notice
from tgm.services.dispatcher.outbound.outbox_lane import ComposedOutboxLane
from tgm.services.dispatcher.outbound.ports import BlockedUsers, OutboxClaim, OutboxLane, OutboxStore, SendLimiter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxPolicy(RetrySchedule):
    """The outbox drain's lock and batch sizes, and its retry schedule (src/tgm/domain/retry.py: the vault down for
    the token, Telegram unreachable or 5xx are transient)."""

    lock_ttl_seconds: float = 30.0
    max_attempts: int = 5
    max_backoff_seconds: float = 30.0
    max_items_per_run: int = 50
    batch_size: int = 20  # calls read per claim (one round trip on Redis)


@dataclass(frozen=True)
class OutboxDrainResult:
    sent: int = 0
    busy: bool = False
    run_again_in: float | None = None


class DrainOutbox:
    def __init__(
        self,
        store: OutboxStore,
        locks: Locks,
        limiter: SendLimiter,
        sender: Callable[[], DirectOutbox],
        dead_letters: DeadLetters,
        policy: OutboxPolicy | None = None,
        lane: OutboxLane | None = None,
        *,
        keeper: LockKeeper,
        blocked_users: BlockedUsers | None = None,
        links: InboxLinks | None = None,
    ) -> None:
        self._links = links
        self._blocked_users = blocked_users
        self._store = store
        self._lane: OutboxLane = lane or ComposedOutboxLane(store, locks)
        self._keeper = keeper  # the process's, run by its thread (src/tgm/host/lock_keeper.py)
        self._limiter = limiter
        self._sender = sender
        self._dead = dead_letters
        self._policy = policy or OutboxPolicy()

    def __call__(self, bot_id: str, chat_key: str) -> OutboxDrainResult:
        ttl = self._policy.lock_ttl_seconds
        run = drain_lane(
            lambda: self._lane.claim(bot_id, chat_key, ttl, self._policy.batch_size),
            lambda claim: self._drain_locked(bot_id, chat_key, claim),
            lambda claim: self._lane.release(bot_id, chat_key, claim.owner),
            self._policy.max_items_per_run,
        )
        return OutboxDrainResult(run.processed, busy=run.busy, run_again_in=run.run_again_in)

    def _drain_locked(self, bot_id: str, chat_key: str, claim: OutboxClaim) -> BatchOutcome:
        """Sends the claimed calls in order; `processed` counts the calls sent."""
        sent = 0
        owner = claim.owner
        ttl = self._policy.lock_ttl_seconds

        def done(raw: bytes, call_id: str | None, *, was_sent: bool) -> bool:
            return self._lane.complete(bot_id, chat_key, owner, raw, call_id, sent=was_sent, ttl_seconds=ttl)

        for raw, already_sent in claim.items:
            try:
                wire = json.loads(raw)
                call_id = str(wire["id"])
            except (ValueError, KeyError, TypeError):
                logger.error("dropping malformed outbound call", extra={"bot_id": bot_id})
                if not done(raw, None, was_sent=False):
                    return BatchOutcome(sent, busy=True)
                continue
            if already_sent:
                if not done(raw, call_id, was_sent=False):
                    return BatchOutcome(sent, busy=True)
                continue
            try:
                queued = QueuedCall.from_wire(wire)
            except (ValueError, KeyError, TypeError) as exc:  # an unknown method or a call without its chat
                self._give_up(bot_id, chat_key, raw, wire, describe_failure(exc), 1)
                continue
            ids = {"bot_id": bot_id, "call_id": call_id, "method": queued.method}
            sender = self._sender()
            try:
                # The token first (a vault call of unknown latency), then the slot, then at once the HTTP
                # call: the time between the limiter's grant and Telegram's arrival stays short.
                token = sender.token(bot_id)
            except BotNotFound as exc:
                self._give_up(bot_id, chat_key, raw, wire, describe_failure(exc), 1)
                continue
            except Exception as exc:
                again = self._failed(bot_id, chat_key, raw, wire, ids, exc)
                if again is not None:
                    return BatchOutcome(sent, run_again_in=again)
                continue
            wait = self._limiter.acquire(bot_id, queued.call.chat_id)
            if wait > 0:
                return BatchOutcome(sent, run_again_in=wait)
            try:
                # A send may take up to the client's timeout, longer than the lane's short lock TTL (short, so a
                # dead worker's lane frees itself in seconds): the process's lock keeper renews it meanwhile.
                with self._keeper.hold(lambda: self._lane.renew(bot_id, chat_key, owner, ttl), ttl):
                    sent_message = sender.send(queued.bot_id, queued.call, token)
            except TelegramRequestFailed as exc:
                if exc.retry_after is not None:
                    # Telegram's flood control is per bot as much as per chat: hold every chat of the bot.
                    self._limiter.pause(bot_id, float(exc.retry_after))
                    logger.warning("Telegram said 429; rescheduling", extra={**ids, "retry_after": exc.retry_after})
                    return BatchOutcome(sent, run_again_in=float(exc.retry_after))
                report_if_blocked(self._blocked_users, queued, exc)
                self._give_up(bot_id, chat_key, raw, wire, describe_failure(exc), 1)  # 400/403: a retry won't help
                self._queue_refusal_notice(bot_id, chat_key, queued)
                continue
            except BotNotFound as exc:
                self._give_up(bot_id, chat_key, raw, wire, describe_failure(exc), 1)
                continue
            except Exception as exc:
                again = self._failed(bot_id, chat_key, raw, wire, ids, exc)
                if again is not None:
                    return BatchOutcome(sent, run_again_in=again)
                continue
            sent += 1
            link_sent(self._links, queued, sent_message)
            if not done(raw, call_id, was_sent=True):
                # Sent, but the lane's lock passed to another drain meanwhile: mark it sent anyway, so that drain
                # skips it instead of sending it again.
                self._store.mark_sent(call_id)
                return BatchOutcome(sent, busy=True)
        return BatchOutcome(sent)

    def _failed(
        self, bot_id: str, chat_key: str, raw: bytes, wire: dict[str, Any], ids: dict[str, Any], exc: Exception
    ) -> float | None:
        """A failure a retry may fix: the delay before the next attempt, or None once given up."""
        attempts = self._store.record_failure(str(wire["id"]))
        reason = describe_failure(exc)
        transient = is_transient(exc)
        if not self._policy.gives_up(attempts, transient=transient):
            delay = self._policy.backoff(attempts, transient=transient)
            logger.warning("send failed; retrying", extra={**ids, "retry_in": delay, "error": reason})
            return float(delay)
        self._give_up(bot_id, chat_key, raw, wire, reason, attempts)
        return None

    def _queue_refusal_notice(self, bot_id: str, chat_key: str, queued: QueuedCall) -> None:
        """A refused delete_message that carries `if_refused_text`: that text goes to the chat instead (queued
        behind this chat's calls, sent by this drain)."""
        notice = refusal_notice(queued)
        if notice is not None:
            self._store.push(bot_id, chat_key, notice.encode(), notice.id)

    def _give_up(self, bot_id: str, chat_key: str, raw: bytes, wire: dict[str, Any], reason: str, n: int) -> None:
        letter_id = self._dead.add("outbound", wire, reason, n, time.time())
        logger.error("outbound call failed for good", extra={"bot_id": bot_id, "dead_letter_id": letter_id})
        self._store.pop(bot_id, chat_key, raw)
        self._store.clear_failures(str(wire["id"]))
