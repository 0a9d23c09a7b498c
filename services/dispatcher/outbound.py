"""Outbound flood control: every Telegram call a bot makes is queued per (bot, chat) and sent by a drain.

`QueuedOutbox` (the Outbox port) RPUSHes an outbound call — an id, the bot id, the chat id, the method
and its parameters; never a token — and enqueues `drain_outbox(bot_id, chat_key)`. `DrainOutbox` takes
the chat's outbox lock, asks the shared `SendLimiter` for a slot (≤ 30/s per bot, ≤ 1/s per private
chat, ≤ 20/min per group) and, when there is none, asks to be run again after the wait instead of
sleeping; a 429 from Telegram does the same with `retry_after`. Each call is marked sent (by id)
right after Telegram accepted it and only then popped, so a redelivered drain does not send it twice.
What stays at-least-once: a crash between Telegram's answer and the mark, or a timeout on a send that
Telegram did perform (the retry sends again).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import dramatiq

from libs.domain.bots import BotToken
from libs.domain.effects import next_effect_id
from libs.domain.errors import BotNotFound, TelegramRequestFailed
from libs.domain.ports import DeadLetters, Locks
from libs.domain.use_cases.drain_chat import describe_failure
from libs.messaging.mailbox import POP_IF_HEAD
from services.dispatcher.adapters.direct_outbox import DirectOutbox

logger = logging.getLogger("services.dispatcher.outbound")

OUTBOX_QUEUE = "outbox"
DRAIN_OUTBOX_ACTOR = "drain_outbox"
NO_CHAT = "cbq"  # answerCallbackQuery has no chat: its own lane, limited per bot only
SENT_TTL_SECONDS = 24 * 3600
DRAIN_DUE_TTL_MS = 60_000  # safety net only: a drain clears its lane's "drain due" flag when it starts

# Idempotent push: a call id is queued at most once (a re-run handler derives the same ids, see
# libs/domain/effects.py); the marker outlives any redelivery.
_PUSH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


# Push once, and raise the lane's "drain due" flag: returns pushed (1) + flag newly raised (2).
_PUSH_ONCE_AND_MARK = """
local pushed = 0
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  pushed = 1
end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then return pushed + 2 end
return pushed
"""


class OutboxStore(Protocol):
    def push(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> bool:
        """Appends unless `call_id` was queued before (then False)."""
        ...

    def push_and_mark(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> tuple[bool, bool]:
        """`push`, and raise the lane's "drain due" flag: (pushed, flag was down so the caller schedules a drain)."""
        ...

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        """A drain starts on the lane: a call pushed from now on must schedule another one."""
        ...

    def peek(self, bot_id: str, chat_key: str) -> bytes | None: ...
    def pop(self, bot_id: str, chat_key: str, raw: bytes) -> bool: ...
    def size(self, bot_id: str, chat_key: str) -> int: ...
    def is_sent(self, call_id: str) -> bool: ...
    def mark_sent(self, call_id: str) -> None: ...
    def record_failure(self, call_id: str) -> int: ...
    def clear_failures(self, call_id: str) -> None: ...


class SendLimiter(Protocol):
    def acquire(self, bot_id: str, chat_id: int | None) -> float: ...

    def pause(self, bot_id: str, seconds: float) -> None:
        """Telegram said 429: no slot for any of the bot's chats for `seconds` (never shortens a pause)."""
        ...


class RedisOutboxStore:
    def __init__(self, client: Any, prefix: str = "tgm:obox") -> None:
        self._client = client
        self._prefix = prefix
        self._pop_if_head = client.register_script(POP_IF_HEAD)
        self._push_once = client.register_script(_PUSH_ONCE)
        self._push_once_and_mark = client.register_script(_PUSH_ONCE_AND_MARK)

    def _key(self, bot_id: str, chat_key: str) -> str:
        return f"{self._prefix}:{bot_id}:{chat_key}"

    def _due_key(self, bot_id: str, chat_key: str) -> str:
        return f"{self._prefix}-due:{bot_id}:{chat_key}"

    def push(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> bool:
        keys = [f"{self._prefix}-q:{call_id}", self._key(bot_id, chat_key)]
        return bool(self._push_once(keys=keys, args=[raw, SENT_TTL_SECONDS]))

    def push_and_mark(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> tuple[bool, bool]:
        keys = [f"{self._prefix}-q:{call_id}", self._key(bot_id, chat_key), self._due_key(bot_id, chat_key)]
        outcome = int(self._push_once_and_mark(keys=keys, args=[raw, SENT_TTL_SECONDS, DRAIN_DUE_TTL_MS]))
        return bool(outcome & 1), bool(outcome & 2)

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        self._client.delete(self._due_key(bot_id, chat_key))

    def peek(self, bot_id: str, chat_key: str) -> bytes | None:
        raw = self._client.lindex(self._key(bot_id, chat_key), 0)
        return None if raw is None else bytes(raw)

    def pop(self, bot_id: str, chat_key: str, raw: bytes) -> bool:
        return bool(self._pop_if_head(keys=[self._key(bot_id, chat_key)], args=[raw]))

    def size(self, bot_id: str, chat_key: str) -> int:
        return int(self._client.llen(self._key(bot_id, chat_key)))

    def is_sent(self, call_id: str) -> bool:
        return bool(self._client.exists(f"{self._prefix}-sent:{call_id}"))

    def mark_sent(self, call_id: str) -> None:
        self._client.set(f"{self._prefix}-sent:{call_id}", b"1", ex=SENT_TTL_SECONDS)

    def record_failure(self, call_id: str) -> int:
        key = f"{self._prefix}-fail:{call_id}"
        pipe = self._client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, SENT_TTL_SECONDS)
        return int(pipe.execute()[0])

    def clear_failures(self, call_id: str) -> None:
        self._client.delete(f"{self._prefix}-fail:{call_id}")


class InMemoryOutboxStore:
    def __init__(self) -> None:
        self._lists: dict[tuple[str, str], deque[bytes]] = {}
        self._sent: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._queued: dict[str, float] = {}
        self._due: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def push(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._queued.get(call_id, 0.0) > now:
                return False
            if len(self._queued) > 10_000:
                self._queued = {k: v for k, v in self._queued.items() if v > now}
            self._queued[call_id] = now + SENT_TTL_SECONDS
            self._lists.setdefault((bot_id, chat_key), deque()).append(raw)
            return True

    def push_and_mark(self, bot_id: str, chat_key: str, raw: bytes, call_id: str) -> tuple[bool, bool]:
        pushed = self.push(bot_id, chat_key, raw, call_id)
        now = time.monotonic()
        with self._lock:
            if self._due.get((bot_id, chat_key), 0.0) > now:
                return pushed, False
            self._due[(bot_id, chat_key)] = now + DRAIN_DUE_TTL_MS / 1000
            return pushed, True

    def clear_drain_pending(self, bot_id: str, chat_key: str) -> None:
        with self._lock:
            self._due.pop((bot_id, chat_key), None)

    def peek(self, bot_id: str, chat_key: str) -> bytes | None:
        with self._lock:
            items = self._lists.get((bot_id, chat_key))
            return items[0] if items else None

    def pop(self, bot_id: str, chat_key: str, raw: bytes) -> bool:
        with self._lock:
            items = self._lists.get((bot_id, chat_key))
            if not items or items[0] != raw:
                return False
            items.popleft()
            if not items:
                del self._lists[(bot_id, chat_key)]
            return True

    def size(self, bot_id: str, chat_key: str) -> int:
        with self._lock:
            return len(self._lists.get((bot_id, chat_key), ()))

    def is_sent(self, call_id: str) -> bool:
        with self._lock:
            return self._sent.get(call_id, 0.0) > time.monotonic()

    def mark_sent(self, call_id: str) -> None:
        with self._lock:
            now = time.monotonic()
            if len(self._sent) > 10_000:
                self._sent = {k: v for k, v in self._sent.items() if v > now}
            self._sent[call_id] = now + SENT_TTL_SECONDS

    def record_failure(self, call_id: str) -> int:
        with self._lock:
            self._failures[call_id] = self._failures.get(call_id, 0) + 1
            return self._failures[call_id]

    def clear_failures(self, call_id: str) -> None:
        with self._lock:
            self._failures.pop(call_id, None)


def drain_outbox_message(bot_id: str, chat_key: str) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=OUTBOX_QUEUE, actor_name=DRAIN_OUTBOX_ACTOR, args=(bot_id, chat_key), kwargs={}, options={}
    )


# Set while a chat drain runs a handler: the lanes it queued calls on, which that drain sends right after the
# handler returns (see FlushingHandler) instead of leaving them to a `drain_outbox` message.
_INLINE_LANES: ContextVar[set[tuple[str, str]] | None] = ContextVar("tgm_inline_outbox_lanes", default=None)


@contextmanager
def collecting_lanes() -> Iterator[set[tuple[str, str]]]:
    lanes: set[tuple[str, str]] = set()
    token = _INLINE_LANES.set(lanes)
    try:
        yield lanes
    finally:
        _INLINE_LANES.reset(token)


class QueuedOutbox:
    """The Outbox port: queue the call, let a drain send it within Telegram's limits.

    One `drain_outbox` message per burst on a lane, not per call (the lane's "drain due" flag); none at all when
    the call is made inside a chat drain's handler, which sends it itself right after (FlushingHandler).
    """

    def __init__(self, store: OutboxStore, broker: dramatiq.Broker) -> None:
        self._store = store
        self._broker = broker

    def _queue(self, bot_id: str, chat_id: int | None, method: str, params: dict[str, Any]) -> None:
        chat_key = NO_CHAT if chat_id is None else str(chat_id)
        call_id = next_effect_id() or uuid.uuid4().hex  # deterministic inside a handler run: a re-run sends once
        call = {"id": call_id, "bot_id": bot_id, "chat_id": chat_id, "method": method, "params": params}
        raw = json.dumps(call, ensure_ascii=False, separators=(",", ":")).encode()
        pushed, schedule = self._store.push_and_mark(bot_id, chat_key, raw, call_id)
        if not pushed:
            logger.info("outbound call already queued by an earlier run", extra={"bot_id": bot_id, "call_id": call_id})
        inline = _INLINE_LANES.get()
        if inline is not None:
            # Even for a duplicate: the earlier run may have died before sending it.
            inline.add((bot_id, chat_key))
        elif schedule:
            self._broker.enqueue(drain_outbox_message(bot_id, chat_key))

    def send_message(
        self,
        bot_id: str,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        disable_web_page_preview: bool = False,
    ) -> None:
        params = {
            "text": text,
            "parse_mode": parse_mode,
            "reply_markup": reply_markup,
            "disable_web_page_preview": disable_web_page_preview,
        }
        self._queue(bot_id, chat_id, "send_message", params)

    def edit_message_text(
        self,
        bot_id: str,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> None:
        params = {"message_id": message_id, "text": text, "parse_mode": parse_mode, "reply_markup": reply_markup}
        self._queue(bot_id, chat_id, "edit_message_text", params)

    def delete_message(self, bot_id: str, chat_id: int, message_id: int, *, if_refused_text: str | None = None) -> None:
        params: dict[str, Any] = {"message_id": message_id}
        if if_refused_text:
            params["if_refused_text"] = if_refused_text
        self._queue(bot_id, chat_id, "delete_message", params)

    def answer_callback_query(self, bot_id: str, callback_query_id: str, text: str | None = None) -> None:
        self._queue(bot_id, None, "answer_callback_query", {"callback_query_id": callback_query_id, "text": text})


def perform(sender: DirectOutbox, call: dict[str, Any], token: BotToken | None = None) -> None:
    """Executes one queued call with the bot's token (opened by the caller, else by the sender now)."""
    bot_id, chat_id, params = str(call["bot_id"]), call.get("chat_id"), dict(call["params"])
    method = call["method"]
    if method == "send_message":
        sender.send_message(
            bot_id,
            int(chat_id),
            str(params["text"]),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            disable_web_page_preview=bool(params.get("disable_web_page_preview")),
            token=token,
        )
    elif method == "edit_message_text":
        sender.edit_message_text(
            bot_id,
            int(chat_id),
            int(params["message_id"]),
            str(params["text"]),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            token=token,
        )
    elif method == "delete_message":
        sender.delete_message(bot_id, int(chat_id), int(params["message_id"]), token=token)
    elif method == "answer_callback_query":
        sender.answer_callback_query(bot_id, str(params["callback_query_id"]), params.get("text"), token=token)
    else:
        raise ValueError(f"unknown outbound method {method!r}")


@dataclass(frozen=True)
class OutboxPolicy:
    lock_ttl_seconds: float = 30.0
    max_attempts: int = 5
    min_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_items_per_run: int = 50


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
    ) -> None:
        self._store = store
        self._locks = locks
        self._limiter = limiter
        self._sender = sender
        self._dead = dead_letters
        self._policy = policy or OutboxPolicy()

    def __call__(self, bot_id: str, chat_key: str) -> OutboxDrainResult:
        sent = 0
        key = f"obox:{bot_id}:{chat_key}"
        self._store.clear_drain_pending(bot_id, chat_key)
        while True:
            owner = self._locks.acquire(key, self._policy.lock_ttl_seconds)
            if owner is None:
                return OutboxDrainResult(sent, busy=True)
            try:
                count, again = self._drain_locked(bot_id, chat_key, key, owner)
            finally:
                self._locks.release(key, owner)
            sent += count
            if again is not None:
                return OutboxDrainResult(sent, run_again_in=again)
            if self._store.size(bot_id, chat_key) == 0:  # lost-wakeup guard, as in DrainChat
                return OutboxDrainResult(sent)

    def _drain_locked(self, bot_id: str, chat_key: str, key: str, owner: str) -> tuple[int, float | None]:
        sent = 0
        for _ in range(self._policy.max_items_per_run):
            if not self._locks.renew(key, owner, self._policy.lock_ttl_seconds):
                return sent, None
            raw = self._store.peek(bot_id, chat_key)
            if raw is None:
                return sent, None
            try:
                call = json.loads(raw)
                call_id = str(call["id"])
            except (ValueError, KeyError, TypeError):
                logger.error("dropping malformed outbound call", extra={"bot_id": bot_id})
                self._store.pop(bot_id, chat_key, raw)
                continue
            ids = {"bot_id": bot_id, "call_id": call_id, "method": call.get("method")}
            if self._store.is_sent(call_id):
                self._store.pop(bot_id, chat_key, raw)
                continue
            chat_id = call.get("chat_id")
            sender = self._sender()
            try:
                # The token first (a vault call of unknown latency), then the slot, then at once the HTTP
                # call: the time between the limiter's grant and Telegram's arrival stays short.
                token = sender.token(bot_id)
            except BotNotFound as exc:
                self._give_up(bot_id, chat_key, raw, call, describe_failure(exc), 1)
                continue
            except Exception as exc:
                again = self._failed(bot_id, chat_key, raw, call, call_id, exc)
                if again is not None:
                    return sent, again
                continue
            wait = self._limiter.acquire(bot_id, chat_id if isinstance(chat_id, int) else None)
            if wait > 0:
                return sent, wait
            try:
                perform(sender, call, token)
            except TelegramRequestFailed as exc:
                if exc.retry_after is not None:
                    # Telegram's flood control is per bot as much as per chat: hold every chat of the bot.
                    self._limiter.pause(bot_id, float(exc.retry_after))
                    logger.warning("Telegram said 429; rescheduling", extra={**ids, "retry_after": exc.retry_after})
                    return sent, float(exc.retry_after)
                self._give_up(bot_id, chat_key, raw, call, describe_failure(exc), 1)  # 400/403: a retry won't help
                self._queue_refusal_notice(bot_id, chat_key, call, call_id)
                continue
            except BotNotFound as exc:
                self._give_up(bot_id, chat_key, raw, call, describe_failure(exc), 1)
                continue
            except Exception as exc:
                again = self._failed(bot_id, chat_key, raw, call, call_id, exc)
                if again is not None:
                    return sent, again
                continue
            self._store.mark_sent(call_id)
            self._store.pop(bot_id, chat_key, raw)
            self._store.clear_failures(call_id)
            sent += 1
        return sent, 0.0

    def _failed(
        self, bot_id: str, chat_key: str, raw: bytes, call: dict[str, Any], call_id: str, exc: Exception
    ) -> float | None:
        """A failure a retry may fix: the delay before the next attempt, or None once given up."""
        attempts = self._store.record_failure(call_id)
        reason = describe_failure(exc)
        if attempts < self._policy.max_attempts:
            step = self._policy.min_backoff_seconds * 2 ** (attempts - 1)
            delay = min(self._policy.max_backoff_seconds, step)
            ids = {"bot_id": bot_id, "call_id": call_id, "method": call.get("method")}
            logger.warning("send failed; retrying", extra={**ids, "retry_in": delay, "error": reason})
            return float(delay)
        self._give_up(bot_id, chat_key, raw, call, reason, attempts)
        return None

    def _queue_refusal_notice(self, bot_id: str, chat_key: str, call: dict[str, Any], call_id: str) -> None:
        """A refused delete_message that carries `if_refused_text`: that text goes to the chat instead (queued
        behind this chat's calls, sent by this drain)."""
        params = call.get("params") or {}
        text = params.get("if_refused_text") if call.get("method") == "delete_message" else None
        if not isinstance(text, str) or not text:
            return
        notice_id = f"{call_id}:refused"
        notice = {
            "id": notice_id,
            "bot_id": bot_id,
            "chat_id": call.get("chat_id"),
            "method": "send_message",
            "params": {"text": text, "parse_mode": "HTML", "reply_markup": None, "disable_web_page_preview": True},
        }
        raw = json.dumps(notice, ensure_ascii=False, separators=(",", ":")).encode()
        self._store.push(bot_id, chat_key, raw, notice_id)

    def _give_up(self, bot_id: str, chat_key: str, raw: bytes, call: dict[str, Any], reason: str, n: int) -> None:
        letter_id = self._dead.add("outbound", call, reason, n, time.time())
        logger.error("outbound call failed for good", extra={"bot_id": bot_id, "dead_letter_id": letter_id})
        self._store.pop(bot_id, chat_key, raw)
        self._store.clear_failures(str(call["id"]))


class DramatiqOutboxScheduler:
    """Schedules a `drain_outbox` message for a lane, after `delay_seconds` when given."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def __call__(self, bot_id: str, chat_key: str, delay_seconds: float | None) -> None:
        delay_ms = round((delay_seconds or 0.0) * 1000)
        self._broker.enqueue(drain_outbox_message(bot_id, chat_key), delay=delay_ms if delay_ms > 0 else None)


class FlushingHandler:
    """Runs a chat drain's handler, then sends the replies it queued at once, from the same worker: no
    `drain_outbox` message and no second worker hop when the send limiter has a slot.

    A lane the limiter (or a 429, or a failure) holds back gets a `drain_outbox` message after the wait, as any
    queued call does. Sending happens before the update is marked done: if the worker dies in between, the
    update runs again, its calls (same effect ids) are not queued twice, and those already sent are not sent
    again. When the handler fails, what it queued is left to `drain_outbox` messages.
    """

    def __init__(
        self,
        handler: Callable[[], Callable[[Any], Any]],
        drain_outbox: Callable[[], DrainOutbox],
        schedule: Callable[[str, str, float | None], None],
    ) -> None:
        self._handler = handler
        self._drain_outbox = drain_outbox
        self._schedule = schedule

    def __call__(self, envelope: Any) -> Any:
        with collecting_lanes() as lanes:
            try:
                outcome = self._handler()(envelope)
            except BaseException:
                for bot_id, chat_key in sorted(lanes):
                    self._schedule(bot_id, chat_key, None)
                raise
        for bot_id, chat_key in sorted(lanes):
            try:
                result = self._drain_outbox()(bot_id, chat_key)
            except Exception as exc:
                logger.warning(
                    "inline send failed; left to the outbox drain",
                    extra={"bot_id": bot_id, "error": describe_failure(exc)},
                )
                self._schedule(bot_id, chat_key, None)
                continue
            if result.run_again_in is not None:
                self._schedule(bot_id, chat_key, result.run_again_in)
            # busy: another drain holds the lane; it looks at the lane again after releasing it
        return outcome
