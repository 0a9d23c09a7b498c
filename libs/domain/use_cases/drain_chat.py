"""DrainChat: one worker at a time works through one chat's mailbox, in order.

Called whenever a `drain_chat(bot_id, chat_key)` message arrives (one per burst of updates to a chat: the
producer enqueues one only when none is due, see libs/messaging/update_queue.py; plus rescheduled ones).
Algorithm:

0. Clear the chat's "drain due" flag before looking at the mailbox: an update pushed from now on schedules
   another drain, and every update pushed before is seen by this one (or by the lock holder, step 4).
1. Take the chat's lock (owner token, TTL). Held by someone else → return: the holder drains.
2. Loop: peek the head (it stays in the list while it is worked on); skip it if (bot, update_id) is
   already done; honour a pending retry delay; check rate limit + cooldown (first attempt only);
   run the handler; mark the update done; then pop exactly that head. A worker killed mid-update
   leaves the item at the head, and the redelivered drain message handles it again.
3. A handler failure keeps the item at the head (the chat waits: order matters) and asks to be run
   again after a backoff; after `max_attempts` the update goes to the dead letters and the chat moves on.
4. When the list is empty: release, then re-check the length and retry the lock, so an update pushed
   between "empty" and "released" is not left waiting for a drain that already returned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libs.domain.effects import effect_scope
from libs.domain.inbound import InboundGuard
from libs.domain.ports import ChatMailbox, Clock, DeadLetters, Locks, MailboxItem, UpdateDeduplicator
from libs.domain.redaction import redact
from libs.domain.updates import UpdateEnvelope

logger = logging.getLogger("libs.domain.drain_chat")

UpdateHandler = Callable[[UpdateEnvelope], Any]
_MAX_REASON_CHARS = 500


def describe_failure(exc: BaseException) -> str:
    """Type name and redacted message, capped: safe to log and to store in Redis."""
    text = redact(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= _MAX_REASON_CHARS else text[:_MAX_REASON_CHARS] + "…"


@dataclass(frozen=True)
class DrainPolicy:
    lock_ttl_seconds: float = 30.0
    max_attempts: int = 4
    min_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 10.0
    max_items_per_run: int = 200  # then yield the thread to other chats (a reschedule at once)

    def backoff(self, attempts: int) -> float:
        return float(min(self.max_backoff_seconds, self.min_backoff_seconds * (2 ** max(0, attempts - 1))))


@dataclass(frozen=True)
class DrainResult:
    handled: int = 0
    skipped: int = 0
    refused: int = 0
    dead_lettered: int = 0
    busy: bool = False  # someone else holds the chat
    run_again_in: float | None = None  # seconds; the caller schedules another drain


class LockWatchdog:
    """Renews a lock every third of its TTL from a side thread while the block runs; `lost` when a renewal
    failed (the TTL passed or another owner took it), so the caller must not act as the holder any more."""

    def __init__(self, locks: Locks, key: str, owner: str, ttl_seconds: float) -> None:
        self._locks = locks
        self._key = key
        self._owner = owner
        self._ttl = ttl_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chat-lock-watchdog", daemon=True)
        self.lost = False

    def _run(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            try:
                if not self._locks.renew(self._key, self._owner, self._ttl):
                    self.lost = True
                    return
            except Exception:  # a Redis hiccup: try again at the next tick; the TTL still covers us
                logger.warning("chat lock renewal failed; retrying", exc_info=False)

    def __enter__(self) -> LockWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def lock_key(bot_id: str, chat_key: str) -> str:
    return f"chat:{bot_id}:{chat_key}"


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
    ) -> None:
        self._mailbox = mailbox
        self._locks = locks
        self._dedup = dedup
        self._handler = handler
        self._dead = dead_letters
        self._clock = clock
        self._guard = guard
        self._policy = policy or DrainPolicy()

    def __call__(self, bot_id: str, chat_key: str) -> DrainResult:
        totals = DrainResult()
        key = lock_key(bot_id, chat_key)
        self._mailbox.clear_drain_pending(bot_id, chat_key)
        while True:
            owner = self._locks.acquire(key, self._policy.lock_ttl_seconds)
            if owner is None:
                return _merge(totals, DrainResult(busy=True))
            try:
                result = self._drain_locked(bot_id, chat_key, key, owner)
            finally:
                self._locks.release(key, owner)
            totals = _merge(totals, result)
            if result.run_again_in is not None:
                return totals
            # Lost-wakeup guard: an item pushed after we saw "empty" but before the release found the
            # lock held and its drain returned; look again now that the lock is free.
            if self._mailbox.size(bot_id, chat_key) == 0:
                return totals

    def _drain_locked(self, bot_id: str, chat_key: str, key: str, owner: str) -> DrainResult:
        handled = skipped = refused = dead = 0
        for _ in range(self._policy.max_items_per_run):
            if not self._locks.renew(key, owner, self._policy.lock_ttl_seconds):
                logger.warning("chat lock lost; stopping this drain", extra={"bot_id": bot_id})
                return DrainResult(handled, skipped, refused, dead, busy=True)
            item = self._mailbox.peek(bot_id, chat_key)
            if item is None:
                return DrainResult(handled, skipped, refused, dead)
            envelope = item.envelope
            if envelope is None:
                logger.error("dropping malformed mailbox item", extra={"bot_id": bot_id})
                self._mailbox.pop(bot_id, chat_key, item)
                skipped += 1
                continue
            if self._dedup.already_done(envelope.bot_id, envelope.update_id):
                self._finish(bot_id, chat_key, item, envelope)
                skipped += 1
                continue
            attempts, retry_at = self._mailbox.failures(bot_id, chat_key, envelope.update_id)
            now = self._clock.now().timestamp()
            if retry_at > now:
                return DrainResult(handled, skipped, refused, dead, run_again_in=retry_at - now)
            if attempts == 0 and self._guard is not None:
                with effect_scope(f"{envelope.bot_id}:{envelope.update_id}:guard"):
                    verdict = self._guard.check(envelope)
                if not verdict.allowed:
                    logger.info("update refused", extra={**_ids(envelope), "reason": verdict.reason})
                    self._dedup.mark_done(envelope.bot_id, envelope.update_id)
                    self._finish(bot_id, chat_key, item, envelope)
                    refused += 1
                    continue
            try:
                # Effect ids derive from (bot, update_id): a re-run after a failure or a crash queues the same
                # outbound ids, and the outbox drops the copies (a handler that replied then failed sends once).
                # The watchdog renews the chat lock while the handler runs, however long it takes.
                with (
                    effect_scope(f"{envelope.bot_id}:{envelope.update_id}"),
                    LockWatchdog(self._locks, key, owner, self._policy.lock_ttl_seconds) as watchdog,
                ):
                    outcome = self._handler()(envelope)
            except Exception as exc:
                reason = describe_failure(exc)
                attempts = self._mailbox.record_failure(
                    bot_id, chat_key, envelope.update_id, now + self._policy.backoff(attempts + 1)
                )
                if attempts < self._policy.max_attempts:
                    delay = self._policy.backoff(attempts)
                    logger.warning(
                        "update failed; the chat waits for its retry",
                        extra={**_ids(envelope), "attempt": attempts, "retry_in": delay, "error": reason},
                    )
                    return DrainResult(handled, skipped, refused, dead, run_again_in=delay)
                letter_id = self._dead.add("update", envelope.to_message(), reason, attempts, now)
                logger.error(
                    "update failed for good; moved to the dead letters",
                    extra={**_ids(envelope), "attempts": attempts, "dead_letter_id": letter_id, "error": reason},
                )
                self._finish(bot_id, chat_key, item, envelope)
                dead += 1
                continue
            if watchdog.lost or not self._locks.renew(key, owner, self._policy.lock_ttl_seconds):
                # Someone else holds the chat now: they run this update again (same effect ids: no double send).
                logger.warning(
                    "chat lock lost while handling; leaving the update to the new holder", extra=_ids(envelope)
                )
                return DrainResult(handled, skipped, refused, dead, busy=True)
            self._dedup.mark_done(envelope.bot_id, envelope.update_id)
            self._finish(bot_id, chat_key, item, envelope)
            handled += 1
            logger.info("update handled", extra={**_ids(envelope), "action": getattr(outcome, "action", None)})
        return DrainResult(handled, skipped, refused, dead, run_again_in=0.0)

    def _finish(self, bot_id: str, chat_key: str, item: MailboxItem, envelope: UpdateEnvelope) -> None:
        self._mailbox.pop(bot_id, chat_key, item)
        self._mailbox.clear_failures(bot_id, chat_key, envelope.update_id)


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
