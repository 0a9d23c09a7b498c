"""DrainChat: one worker at a time works through one chat's mailbox, in order.

Called whenever a `drain_chat(bot_id, chat_key)` message arrives (one per burst of updates to a chat: the
producer enqueues one only when none is due, see src/tgm/messaging/update_queue.py; plus rescheduled ones).
Algorithm:

0. Clear the chat's "drain due" flag before looking at the mailbox: an update pushed from now on schedules
   another drain, and every update pushed before is seen by this one (or by the lock holder, step 4).
1. Claim the chat (ChatLane.claim: with step 0, the lock and a batch read from the head, in one round trip
   on Redis). Held by someone else → return: the holder drains.
2. For each item (it stays in the list while it is worked on): skip it if (bot, update_id) is already
   done; honour a pending retry delay; check rate limit + cooldown (first attempt only); run the handler
   (the process's LockKeeper renews the lock if it runs long); then `complete` it: mark done, pop exactly
   that head, clear its failures, only if the lock is still ours. A worker killed mid-update leaves the
   item at the head, and the redelivered drain message handles it again.
3. A handler failure keeps the item at the head (the chat waits: order matters) and asks to be run
   again after a backoff; after `max_attempts` the update goes to the dead letters and the chat moves on.
4. After the batch: release (which answers how many items are left; the last item's `complete_and_release`
   does it in the same step) and claim again while any are (the loop every lane shares: src/tgm/domain/lane.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tgm.domain.chat_lane import ComposedChatLane, lock_key
from tgm.domain.errors import is_transient
from tgm.domain.inbound import InboundGuard
from tgm.domain.lane import BatchOutcome, LockKeeper, drain_lane
from tgm.domain.ports import (
    ChatLane,
    ChatMailbox,
    Clock,
    DeadLetters,
    LaneClaim,
    Locks,
    MailboxItem,
    UpdateDeduplicator,
)
from tgm.domain.redaction import redact
from tgm.domain.retry import RetrySchedule
from tgm.domain.telegram_update import MalformedUpdate
from tgm.domain.updates import UpdateEnvelope

__all__ = ["DrainChat", "DrainPolicy", "DrainResult", "UpdateHandler", "describe_failure", "lock_key"]

logger = logging.getLogger(__name__)

UpdateHandler = Callable[[UpdateEnvelope], Any]
_MAX_REASON_CHARS = 500


def describe_failure(exc: BaseException) -> str:
    """Type name and redacted message, capped: safe to log and to store in Redis."""
    text = redact(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= _MAX_REASON_CHARS else text[:_MAX_REASON_CHARS] + "…"


@dataclass(frozen=True)
class DrainPolicy(RetrySchedule):
    """The chat drain's lock and batch sizes, and its retry schedule (src/tgm/domain/retry.py)."""

    lock_ttl_seconds: float = 30.0
    max_items_per_run: int = 200  # then yield the thread to other chats (a reschedule at once)
    batch_size: int = 20  # items read from the head per claim (stores that read in bulk: one round trip)


@dataclass(frozen=True)
class DrainResult:
    handled: int = 0
    skipped: int = 0
    refused: int = 0
    dead_lettered: int = 0
    busy: bool = False  # someone else holds the chat
    run_again_in: float | None = None  # seconds; the caller schedules another drain


class DrainChat:
    def __init__(
        self,
        mailbox: ChatMailbox,
        locks: Locks,
        dedup: UpdateDeduplicator,
        handler: Callable[[], UpdateHandler],
        dead_letters: DeadLetters,
        clock: Clock,
        guard: InboundGuard | None = None,
        policy: DrainPolicy | None = None,
        lane: ChatLane | None = None,
        *,
        keeper: LockKeeper,
    ) -> None:
        # The lane is what the drain talks to; by default it is made of the fine-grained ports (one call each),
        # on Redis the dispatcher passes a lane that does each step in one round trip.
        self._lane: ChatLane = lane or ComposedChatLane(mailbox, locks, dedup)
        self._handler = handler
        self._dead = dead_letters
        self._clock = clock
        self._guard = guard
        self._policy = policy or DrainPolicy()
        # The process's keeper, run by its thread (src/tgm/host/lock_keeper.py): required, since a keeper nothing
        # runs renews nothing and a long handler would lose the chat to another drain.
        self._keeper = keeper

    def __call__(self, bot_id: str, chat_key: str) -> DrainResult:
        totals = DrainResult()
        ttl = self._policy.lock_ttl_seconds

        def work(claim: LaneClaim) -> BatchOutcome:
            nonlocal totals
            released: list[int] = []  # set when the last item's completion released the chat already
            result = self._drain_locked(bot_id, chat_key, claim, released)
            totals = _merge(totals, result)
            processed = result.handled + result.skipped + result.refused + result.dead_lettered
            return BatchOutcome(processed, result.busy, result.run_again_in, released[0] if released else None)

        run = drain_lane(
            lambda: self._lane.claim(bot_id, chat_key, ttl, self._policy.batch_size),
            work,
            lambda claim: self._lane.release(bot_id, chat_key, claim.owner),
            self._policy.max_items_per_run,
        )
        return _merge(totals, DrainResult(busy=run.busy, run_again_in=run.run_again_in))

    def _drain_locked(self, bot_id: str, chat_key: str, claim: LaneClaim, released: list[int]) -> DrainResult:
        """Works through the claimed items; completing the last one also releases the chat (its count of items
        left goes into `released`), saving the release's round trip."""
        handled = skipped = refused = dead = 0
        owner = claim.owner
        ttl = self._policy.lock_ttl_seconds
        last = claim.items[-1].item if claim.items else None

        def complete(item: MailboxItem, update_id: int | None, *, mark_done: bool) -> bool:
            if item is not last:
                return self._lane.complete(
                    bot_id, chat_key, owner, item, update_id, mark_done=mark_done, ttl_seconds=ttl
                )
            left = self._lane.complete_and_release(bot_id, chat_key, owner, item, update_id, mark_done=mark_done)
            if left is None:
                return False
            released.append(left)
            return True

        for entry in claim.items:
            item = entry.item
            envelope = item.envelope
            if envelope is None:
                logger.error("dropping malformed mailbox item", extra={"bot_id": bot_id})
                if not complete(item, None, mark_done=False):
                    return DrainResult(handled, skipped, refused, dead, busy=True)
                skipped += 1
                continue
            if entry.done:
                if not complete(item, envelope.update_id, mark_done=False):
                    return DrainResult(handled, skipped, refused, dead, busy=True)
                skipped += 1
                continue
            attempts, retry_at = entry.attempts, entry.retry_at
            now = self._clock.now().timestamp()
            try:
                envelope.view  # noqa: B018 - parsed once here, so the guard and handlers never meet a malformed one
            except MalformedUpdate as exc:
                # The gateway refuses these; one queued before that check cannot succeed on a retry.
                letter_id = self._dead.add("update", envelope.to_message(), f"malformed: {exc}", attempts, now)
                logger.error(
                    "malformed update moved to the dead letters", extra={**_ids(envelope), "dead_letter_id": letter_id}
                )
                if not complete(item, envelope.update_id, mark_done=False):
                    return DrainResult(handled, skipped, refused, dead, busy=True)
                dead += 1
                continue
            if retry_at > now:
                return DrainResult(handled, skipped, refused, dead, run_again_in=retry_at - now)
            if attempts == 0 and self._guard is not None:
                verdict = self._guard.check(envelope)
                if not verdict.allowed:
                    logger.info("update refused", extra={**_ids(envelope), "reason": verdict.reason})
                    if not complete(item, envelope.update_id, mark_done=True):
                        return DrainResult(handled, skipped, refused, dead, busy=True)
                    refused += 1
                    continue
            try:
                # Handlers derive their effect ids from (bot, update_id) (src/tgm/domain/effects.py): a re-run after a
                # failure or a crash queues the same outbound ids, and the outbox drops the copies (a handler that
                # replied then failed sends once).
                # The process's lock keeper renews the chat lock while the handler runs, however long it takes.
                with self._keeper.hold(lambda: self._lane.renew(bot_id, chat_key, owner, ttl), ttl) as holding:
                    outcome = self._handler()(envelope)
            except Exception as exc:
                reason = describe_failure(exc)
                transient = is_transient(exc)
                attempts = self._lane.record_failure(
                    bot_id, chat_key, envelope.update_id, now + self._policy.backoff(attempts + 1, transient=transient)
                )
                if not self._policy.gives_up(attempts, transient=transient):
                    delay = self._policy.backoff(attempts, transient=transient)
                    logger.warning(
                        "update failed; the chat waits for its retry",
                        extra={
                            **_ids(envelope),
                            "attempt": attempts,
                            "retry_in": delay,
                            "transient": transient,
                            "error": reason,
                        },
                    )
                    return DrainResult(handled, skipped, refused, dead, run_again_in=delay)
                letter_id = self._dead.add("update", envelope.to_message(), reason, attempts, now)
                logger.error(
                    "update failed for good; moved to the dead letters",
                    extra={**_ids(envelope), "attempts": attempts, "dead_letter_id": letter_id, "error": reason},
                )
                if not complete(item, envelope.update_id, mark_done=False):
                    return DrainResult(handled, skipped, refused, dead, busy=True)
                dead += 1
                continue
            if holding.lost or not complete(item, envelope.update_id, mark_done=True):
                # Someone else holds the chat now: they run this update again. Same effect ids: queued calls are not
                # queued twice; a reply sent directly is marked sent by the release (Redis), so a new holder that
                # re-ran the update before that can send it again (the lock was lost: at-least-once, as documented).
                logger.warning(
                    "chat lock lost while handling; leaving the update to the new holder", extra=_ids(envelope)
                )
                return DrainResult(handled, skipped, refused, dead, busy=True)
            handled += 1
            logger.info("update handled", extra={**_ids(envelope), "action": getattr(outcome, "action", None)})
        return DrainResult(handled, skipped, refused, dead)


def _ids(envelope: UpdateEnvelope) -> dict[str, Any]:
    return {"bot_id": envelope.bot_id, "update_id": envelope.update_id, "request_id": envelope.request_id}


def _merge(a: DrainResult, b: DrainResult) -> DrainResult:
    return DrainResult(
        handled=a.handled + b.handled,
        skipped=a.skipped + b.skipped,
        refused=a.refused + b.refused,
        dead_lettered=a.dead_lettered + b.dead_lettered,
        busy=b.busy,
        run_again_in=b.run_again_in,
    )
