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

import base64
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
from libs.domain.chat_lane import LockKeeper
from libs.domain.effects import next_effect_id
from libs.domain.errors import BotNotFound, TelegramRequestFailed, blocked_by_user, is_transient
from libs.domain.inbox import InboxLinks
from libs.domain.ports import DeadLetters, Locks, SentMessage
from libs.domain.retry import RetrySchedule
from libs.domain.use_cases.drain_chat import describe_failure
from libs.grpc_runtime.channels import valid_request_id
from libs.messaging.mailbox import POP_IF_HEAD
from libs.observability.logging import request_id_var
from libs.observability.metrics import TELEGRAM_MESSAGES, message_type
from services.dispatcher.adapters.direct_outbox import DirectOutbox
from services.dispatcher.adapters.redis_abuse import RedisLocks
from services.dispatcher.adapters.redis_chat_lane import RELEASE_AND_COUNT, ms
from services.dispatcher.adapters.sent_marks import OUTBOX_PREFIX, SENT_TTL_SECONDS, DeferredSentMarks, sent_mark_key

logger = logging.getLogger(__name__)

OUTBOX_QUEUE = "outbox"
DRAIN_OUTBOX_ACTOR = "drain_outbox"
NO_CHAT = "cbq"  # answerCallbackQuery has no chat: its own lane, limited per bot only
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


def _due_key(prefix: str, bot_id: str, chat_key: str) -> str:
    """The lane's "drain due" flag (raised by push_and_mark, cleared by the drain's claim)."""
    return f"{prefix}-due:{bot_id}:{chat_key}"


class RedisOutboxStore:
    def __init__(self, client: Any, prefix: str = OUTBOX_PREFIX) -> None:
        self._client = client
        self._prefix = prefix
        self._pop_if_head = client.register_script(POP_IF_HEAD)
        self._push_once = client.register_script(_PUSH_ONCE)
        self._push_once_and_mark = client.register_script(_PUSH_ONCE_AND_MARK)

    def _key(self, bot_id: str, chat_key: str) -> str:
        return f"{self._prefix}:{bot_id}:{chat_key}"

    def _due_key(self, bot_id: str, chat_key: str) -> str:
        return _due_key(self._prefix, bot_id, chat_key)

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
        return bool(self._client.exists(sent_mark_key(call_id, self._prefix)))

    def mark_sent(self, call_id: str) -> None:
        self._client.set(sent_mark_key(call_id, self._prefix), b"1", ex=SENT_TTL_SECONDS)

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


def refusal_notice(call: dict[str, Any]) -> dict[str, Any] | None:
    """The call to make when Telegram refused `call` for good: a delete_message that carries `if_refused_text`
    sends that text to the chat instead; None for anything else."""
    params = call.get("params") or {}
    text = params.get("if_refused_text") if call.get("method") == "delete_message" else None
    if not isinstance(text, str) or not text:
        return None
    return {
        "id": f"{call['id']}:refused",
        "bot_id": call["bot_id"],
        "chat_id": call.get("chat_id"),
        "method": "send_message",
        "params": {"text": text, "parse_mode": "HTML", "reply_markup": None, "disable_web_page_preview": True},
    }


def refused_for_good(exc: Exception) -> bool:
    """Telegram's 4xx other than 429 (bad request, blocked, not found): the same call would be refused again."""
    return isinstance(exc, TelegramRequestFailed) and exc.retry_after is None and 400 <= exc.error_code < 500


class BlockedUsers(Protocol):
    """Learns of subscribers who blocked a bot (issue 15): a rare failure path, never called per update."""

    def blocked(self, bot_id: str, telegram_user_id: int) -> None:
        """Best effort: never raises."""
        ...


def report_if_blocked(reporter: BlockedUsers | None, bot_id: str, call: dict[str, Any], exc: Exception) -> None:
    """Telegram's 403 "Forbidden: bot was blocked by the user" on a call to a private chat (its id is the user's):
    the user blocked the bot."""
    chat_id = call.get("chat_id")
    if reporter is not None and blocked_by_user(exc) and isinstance(chat_id, int) and chat_id > 0:
        reporter.blocked(bot_id, chat_id)


def link_sent(links: InboxLinks | None, call: dict[str, Any], sent: SentMessage | None) -> None:
    """An inbox delivery (its params carry `link_chat_id`): the message Telegram just numbered is linked to the user's
    chat, so an admin's reply to it finds that user (libs/domain/inbox.py). Best effort: the message is sent either
    way, and a lost link only means a reply to it is explained instead of delivered."""
    user_chat = (call.get("params") or {}).get("link_chat_id")
    if links is None or sent is None or not isinstance(user_chat, int):
        return
    try:
        links.link(str(call["bot_id"]), sent.chat_id, sent.message_id, user_chat)
    except Exception as exc:
        logger.warning("inbox link not stored", extra={"bot_id": call.get("bot_id"), "error": describe_failure(exc)})


class DirectSendGate(Protocol):
    def open(self, bot_id: str, chat_key: str, chat_id: int | None, call_id: str) -> bool:
        """True, with a send slot taken, when nothing waits on the lane before this call, the call was not sent
        by an earlier run, and the limiter has a slot now; False (nothing taken) otherwise."""
        ...


class ComposedDirectSendGate:
    """The gate from an OutboxStore and a SendLimiter (in memory; one call each)."""

    def __init__(self, store: OutboxStore, limiter: SendLimiter) -> None:
        self._store = store
        self._limiter = limiter

    def open(self, bot_id: str, chat_key: str, chat_id: int | None, call_id: str) -> bool:
        if self._store.size(bot_id, chat_key) or self._store.is_sent(call_id):
            return False
        return self._limiter.acquire(bot_id, chat_id) <= 0


class RedisDirectSendGate:
    """The gate in one round trip: the lane and sent-mark checks in front of the send limiter's own script."""

    def __init__(self, client: Any, limiter: Any, prefix: str = OUTBOX_PREFIX) -> None:
        from services.dispatcher.adapters.redis_abuse import SEND_SLOT

        # KEYS[1..3] and ARGV are the limiter's; KEYS[4] the lane, KEYS[5] the call's sent mark.
        self._script = client.register_script(
            "if redis.call('LLEN', KEYS[4]) > 0 or redis.call('EXISTS', KEYS[5]) == 1 then return -1 end\n" + SEND_SLOT
        )
        self._limiter = limiter
        self._prefix = prefix

    def open(self, bot_id: str, chat_key: str, chat_id: int | None, call_id: str) -> bool:
        keys, args = self._limiter.slot_request(bot_id, chat_id)
        keys = [*keys, f"{self._prefix}:{bot_id}:{chat_key}", sent_mark_key(call_id, self._prefix)]
        return int(self._script(keys=keys, args=args)) == 0


class DirectSend:
    """Sends a call at once, from the chat drain whose handler made it, when the gate opens; marks it sent.

    Returns SENT, REFUSED (Telegram refused it for good: dead-lettered here, as DrainOutbox would) or QUEUE.
    Anything it cannot finish — a lane with calls waiting (order), an earlier run that sent it, no slot, a failure a
    retry may fix — goes through the queue, where DrainOutbox applies retries, 429 pauses and dead letters. What
    stays at-least-once is what always was: a send Telegram performed whose answer or sent-mark was lost.
    """

    SENT, REFUSED, QUEUE = "sent", "refused", "queue"

    def __init__(
        self,
        gate: DirectSendGate,
        store: OutboxStore,
        sender: Callable[[], DirectOutbox],
        dead_letters: DeadLetters,
        limiter: SendLimiter,
        deferred_marks: DeferredSentMarks | None = None,
        blocked_users: BlockedUsers | None = None,
        links: InboxLinks | None = None,
    ) -> None:
        self._links = links
        self._gate = gate
        self._blocked_users = blocked_users
        self._deferred_marks = deferred_marks  # on Redis the update's completion writes the mark (sent_marks.py)
        self._store = store
        self._sender = sender
        self._dead = dead_letters
        self._limiter = limiter

    def __call__(self, bot_id: str, chat_key: str, call: dict[str, Any]) -> str:
        call_id = str(call["id"])
        chat_id = call.get("chat_id")
        try:
            sender = self._sender()
            token = sender.token(bot_id)  # before the slot: the grant-to-arrival time stays short
            if not self._gate.open(bot_id, chat_key, chat_id if isinstance(chat_id, int) else None, call_id):
                return self.QUEUE
            sent = perform(sender, call, token)
        except Exception as exc:
            if isinstance(exc, TelegramRequestFailed) and exc.retry_after is not None:
                # As DrainOutbox does: hold every chat of the bot; the queued call waits out the pause.
                self._limiter.pause(bot_id, float(exc.retry_after))
                logger.warning(
                    "Telegram said 429; rescheduling",
                    extra={
                        "bot_id": bot_id,
                        "call_id": call_id,
                        "method": call.get("method"),
                        "retry_after": exc.retry_after,
                    },
                )
                return self.QUEUE
            if refused_for_good(exc):
                report_if_blocked(self._blocked_users, bot_id, call, exc)
                letter_id = self._dead.add("outbound", call, describe_failure(exc), 1, time.time())
                logger.error("outbound call failed for good", extra={"bot_id": bot_id, "dead_letter_id": letter_id})
                self._store.mark_sent(call_id)  # settled: a re-run of the update does not try it again
                return self.REFUSED
            logger.info(
                "direct send failed; queued instead",
                extra={"bot_id": bot_id, "call_id": call_id, "error": describe_failure(exc)},
            )
            return self.QUEUE
        link_sent(self._links, call, sent)
        if self._deferred_marks is not None:
            self._deferred_marks.defer(call_id)
            return self.SENT
        try:
            self._store.mark_sent(call_id)
        except Exception as exc:  # sent all the same; only a re-run of this update could send it again
            logger.warning("sent mark not stored", extra={"bot_id": bot_id, "error": describe_failure(exc)})
        return self.SENT


class QueuedOutbox:
    """The Outbox port: queue the call, let a drain send it within Telegram's limits.

    Inside a chat drain's handler a call first tries `DirectSend` (sent now, nothing queued); if it cannot go at
    once it is queued and that drain sends it right after the handler returns (FlushingHandler). Elsewhere one
    `drain_outbox` message per burst on a lane, not per call (the lane's "drain due" flag).
    """

    def __init__(self, store: OutboxStore, broker: dramatiq.Broker, direct: DirectSend | None = None) -> None:
        self._store = store
        self._broker = broker
        self._direct = direct

    def _queue(self, bot_id: str, chat_id: int | None, method: str, params: dict[str, Any]) -> None:
        chat_key = NO_CHAT if chat_id is None else str(chat_id)
        call_id = next_effect_id() or uuid.uuid4().hex  # deterministic inside a handler run: a re-run sends once
        call = {"id": call_id, "bot_id": bot_id, "chat_id": chat_id, "method": method, "params": params}
        self._put(bot_id, chat_key, call)

    def _put(self, bot_id: str, chat_key: str, call: dict[str, Any]) -> None:
        call_id = str(call["id"])
        inline = _INLINE_LANES.get()
        if inline is not None and self._direct is not None:
            outcome = self._direct(bot_id, chat_key, call)
            if outcome == DirectSend.SENT:
                return
            if outcome == DirectSend.REFUSED:
                notice = refusal_notice(call)
                if notice is not None:
                    self._put(bot_id, chat_key, notice)
                return
        raw = json.dumps(call, ensure_ascii=False, separators=(",", ":")).encode()
        pushed, schedule = self._store.push_and_mark(bot_id, chat_key, raw, call_id)
        if not pushed:
            logger.info("outbound call already queued by an earlier run", extra={"bot_id": bot_id, "call_id": call_id})
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
        link_chat_id: int | None = None,
    ) -> None:
        """`link_chat_id`: an inbox delivery, linked to that user's chat once sent (see link_sent)."""
        params: dict[str, Any] = {
            "text": text,
            "parse_mode": parse_mode,
            "reply_markup": reply_markup,
            "disable_web_page_preview": disable_web_page_preview,
        }
        if link_chat_id is not None:
            params["link_chat_id"] = link_chat_id
        self._queue(bot_id, chat_id, "send_message", params)

    def copy_message(
        self,
        bot_id: str,
        chat_id: int,
        from_chat_id: int,
        message_id: int,
        *,
        reply_markup: dict[str, Any] | None = None,
        link_chat_id: int | None = None,
    ) -> None:
        params: dict[str, Any] = {"from_chat_id": from_chat_id, "message_id": message_id, "reply_markup": reply_markup}
        if link_chat_id is not None:
            params["link_chat_id"] = link_chat_id
        self._queue(bot_id, chat_id, "copy_message", params)

    def send_document(
        self, bot_id: str, chat_id: int, filename: str, content: bytes, *, mime_type: str, caption: str = ""
    ) -> None:
        params = {
            "filename": filename,
            "content_base64": base64.b64encode(content).decode("ascii"),
            "mime_type": mime_type,
            "caption": caption,
        }
        self._queue(bot_id, chat_id, "send_document", params)

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


def _chat_of(call: dict[str, Any]) -> int:
    """The chat a queued call writes to (every method but answer_callback_query names one)."""
    chat_id = call.get("chat_id")
    if chat_id is None:
        raise ValueError(f"queued {call.get('method')!r} call without a chat_id")
    return int(chat_id)


def perform(sender: DirectOutbox, call: dict[str, Any], token: BotToken | None = None) -> SentMessage | None:
    """Executes one queued call with the bot's token (opened by the caller, else by the sender now); the message it
    sent, for a send or a copy."""
    bot_id, params, method = str(call["bot_id"]), dict(call["params"]), call["method"]
    chat_id = _chat_of(call) if method != "answer_callback_query" else 0
    sent: SentMessage | None = None
    if method == "send_message":
        sent = sender.send_message(
            bot_id,
            chat_id,
            str(params["text"]),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            disable_web_page_preview=bool(params.get("disable_web_page_preview")),
            token=token,
        )
    elif method == "edit_message_text":
        sender.edit_message_text(
            bot_id,
            chat_id,
            int(params["message_id"]),
            str(params["text"]),
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
            token=token,
        )
    elif method == "delete_message":
        sender.delete_message(bot_id, chat_id, int(params["message_id"]), token=token)
    elif method == "send_document":
        sender.send_document(
            bot_id,
            chat_id,
            str(params["filename"]),
            base64.b64decode(params["content_base64"]),
            mime_type=str(params["mime_type"]),
            caption=str(params.get("caption") or ""),
            token=token,
        )
    elif method == "answer_callback_query":
        sender.answer_callback_query(bot_id, str(params["callback_query_id"]), params.get("text"), token=token)
    elif method == "copy_message":
        sent = sender.copy_message(
            bot_id,
            chat_id,
            int(params["from_chat_id"]),
            int(params["message_id"]),
            reply_markup=params.get("reply_markup"),
            token=token,
        )
    else:
        raise ValueError(f"unknown outbound method {method!r}")
    return sent


@dataclass(frozen=True)
class OutboxPolicy(RetrySchedule):
    """The outbox drain's lock and batch sizes, and its retry schedule (libs/domain/retry.py: the vault down for
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


class OutboxLane(Protocol):
    """A lane of the outbox as DrainOutbox uses it: claim (flag, lock and a batch read), complete, release."""

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> OutboxClaim | None: ...

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        """Extends the lane's lock if `owner` still holds it (the lock keeper calls it while a send runs)."""
        ...

    def complete(
        self, bot_id: str, chat_key: str, owner: str, raw: bytes, call_id: str | None, *, sent: bool, ttl_seconds: float
    ) -> bool:
        """If `owner` still holds the lane: marks the call sent (when `sent`), pops exactly `raw` from the head and
        clears its failures. False, changing nothing, when the lock was lost."""
        ...

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        """Releases the lane's lock if still ours; the number of calls left."""
        ...


@dataclass(frozen=True)
class OutboxClaim:
    owner: str
    items: tuple[tuple[bytes, bool], ...]  # (raw call, already sent), oldest first


def _lane_lock(bot_id: str, chat_key: str) -> str:
    return f"obox:{bot_id}:{chat_key}"


class ComposedOutboxLane:
    """The lane made of an OutboxStore and the Locks port (in memory; one call per step)."""

    def __init__(self, store: OutboxStore, locks: Locks) -> None:
        self._store = store
        self._locks = locks

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> OutboxClaim | None:
        self._store.clear_drain_pending(bot_id, chat_key)
        owner = self._locks.acquire(_lane_lock(bot_id, chat_key), ttl_seconds)
        if owner is None:
            return None
        raw = self._store.peek(bot_id, chat_key)
        if raw is None:
            return OutboxClaim(owner, ())
        call_id = _call_id(raw)
        return OutboxClaim(owner, ((raw, call_id is not None and self._store.is_sent(call_id)),))

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        return self._locks.renew(_lane_lock(bot_id, chat_key), owner, ttl_seconds)

    def complete(
        self, bot_id: str, chat_key: str, owner: str, raw: bytes, call_id: str | None, *, sent: bool, ttl_seconds: float
    ) -> bool:
        if not self._locks.renew(_lane_lock(bot_id, chat_key), owner, ttl_seconds):
            return False
        if sent and call_id is not None:
            self._store.mark_sent(call_id)
        self._store.pop(bot_id, chat_key, raw)
        if call_id is not None:
            self._store.clear_failures(call_id)
        return True

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        self._locks.release(_lane_lock(bot_id, chat_key), owner)
        return self._store.size(bot_id, chat_key)


# KEYS: lane list, drain-due flag, lock. ARGV: owner, ttl ms, batch, sent-marker prefix ("<prefix>-sent:").
_CLAIM_LANE = """
redis.call('DEL', KEYS[2])
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local out = {}
for _, raw in ipairs(items) do
  local sent = 0
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' and type(decoded['id']) == 'string' then
    sent = redis.call('EXISTS', ARGV[4] .. decoded['id'])
  end
  table.insert(out, raw)
  table.insert(out, sent)
end
return out
"""

# KEYS: lane list, lock, sent marker, failures counter. ARGV: owner, ttl ms, raw, mark sent (1/0), sent ttl s.
_COMPLETE_LANE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[4] == '1' then redis.call('SET', KEYS[3], '1', 'EX', ARGV[5]) end
if redis.call('LINDEX', KEYS[1], 0) == ARGV[3] then redis.call('LPOP', KEYS[1]) end
redis.call('DEL', KEYS[4])
return 1
"""


class RedisOutboxLane:
    """OutboxLane on Redis, one Lua script per step; the same keys as RedisOutboxStore and RedisLocks."""

    def __init__(self, client: Any, prefix: str = OUTBOX_PREFIX, lock_prefix: str = "tgm:lock") -> None:
        self._prefix = prefix
        self._lock_prefix = lock_prefix
        self._claim = client.register_script(_CLAIM_LANE)
        self._complete = client.register_script(_COMPLETE_LANE)
        self._release = client.register_script(RELEASE_AND_COUNT)
        self._locks = RedisLocks(client, prefix=lock_prefix)  # renewals: the same owner-checked PEXPIRE

    def _list(self, bot_id: str, chat_key: str) -> str:
        return f"{self._prefix}:{bot_id}:{chat_key}"

    def _lock(self, bot_id: str, chat_key: str) -> str:
        return f"{self._lock_prefix}:{_lane_lock(bot_id, chat_key)}"

    def claim(self, bot_id: str, chat_key: str, ttl_seconds: float, batch: int) -> OutboxClaim | None:
        owner = uuid.uuid4().hex
        keys = [self._list(bot_id, chat_key), _due_key(self._prefix, bot_id, chat_key), self._lock(bot_id, chat_key)]
        flat = self._claim(keys=keys, args=[owner, ms(ttl_seconds), max(1, batch), f"{self._prefix}-sent:"])
        if flat is None:
            return None
        return OutboxClaim(owner, tuple((bytes(flat[i]), bool(int(flat[i + 1]))) for i in range(0, len(flat), 2)))

    def renew(self, bot_id: str, chat_key: str, owner: str, ttl_seconds: float) -> bool:
        return self._locks.renew(_lane_lock(bot_id, chat_key), owner, ttl_seconds)

    def complete(
        self, bot_id: str, chat_key: str, owner: str, raw: bytes, call_id: str | None, *, sent: bool, ttl_seconds: float
    ) -> bool:
        marker = call_id or ""
        keys = [
            self._list(bot_id, chat_key),
            self._lock(bot_id, chat_key),
            sent_mark_key(marker, self._prefix),
            f"{self._prefix}-fail:{marker}",
        ]
        args = [owner, ms(ttl_seconds), raw, "1" if sent and call_id else "0", SENT_TTL_SECONDS]
        return bool(self._complete(keys=keys, args=args))

    def release(self, bot_id: str, chat_key: str, owner: str) -> int:
        return int(self._release(keys=[self._lock(bot_id, chat_key), self._list(bot_id, chat_key)], args=[owner]))


def _call_id(raw: bytes) -> str | None:
    try:
        call = json.loads(raw)
        return str(call["id"])
    except (ValueError, KeyError, TypeError):
        return None


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
        keeper: LockKeeper | None = None,
        blocked_users: BlockedUsers | None = None,
        links: InboxLinks | None = None,
    ) -> None:
        self._links = links
        self._blocked_users = blocked_users
        self._store = store
        self._lane: OutboxLane = lane or ComposedOutboxLane(store, locks)
        self._keeper = keeper or LockKeeper()
        self._limiter = limiter
        self._sender = sender
        self._dead = dead_letters
        self._policy = policy or OutboxPolicy()

    def __call__(self, bot_id: str, chat_key: str) -> OutboxDrainResult:
        sent = 0
        ttl = self._policy.lock_ttl_seconds
        while True:
            claim = self._lane.claim(bot_id, chat_key, ttl, self._policy.batch_size)
            if claim is None:
                return OutboxDrainResult(sent, busy=True)
            try:
                count, again, lost = self._drain_locked(bot_id, chat_key, claim)
            finally:
                left = self._lane.release(bot_id, chat_key, claim.owner)
            sent += count
            if again is not None:
                return OutboxDrainResult(sent, run_again_in=again)
            if lost:
                return OutboxDrainResult(sent, busy=True)
            if left == 0:  # lost-wakeup guard, as in DrainChat
                return OutboxDrainResult(sent)
            if sent >= self._policy.max_items_per_run:
                return OutboxDrainResult(sent, run_again_in=0.0)

    def _drain_locked(self, bot_id: str, chat_key: str, claim: OutboxClaim) -> tuple[int, float | None, bool]:
        """(sent, run again after, lock lost)."""
        sent = 0
        owner = claim.owner
        ttl = self._policy.lock_ttl_seconds

        def done(raw: bytes, call_id: str | None, *, was_sent: bool) -> bool:
            return self._lane.complete(bot_id, chat_key, owner, raw, call_id, sent=was_sent, ttl_seconds=ttl)

        for raw, already_sent in claim.items:
            try:
                call = json.loads(raw)
                call_id = str(call["id"])
            except (ValueError, KeyError, TypeError):
                logger.error("dropping malformed outbound call", extra={"bot_id": bot_id})
                if not done(raw, None, was_sent=False):
                    return sent, None, True
                continue
            ids = {"bot_id": bot_id, "call_id": call_id, "method": call.get("method")}
            if already_sent:
                if not done(raw, call_id, was_sent=False):
                    return sent, None, True
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
                    return sent, again, False
                continue
            wait = self._limiter.acquire(bot_id, chat_id if isinstance(chat_id, int) else None)
            if wait > 0:
                return sent, wait, False
            try:
                # A send may take up to the client's timeout, longer than the lane's short lock TTL (short, so a
                # dead worker's lane frees itself in seconds): the process's lock keeper renews it meanwhile.
                with self._keeper.hold(lambda: self._lane.renew(bot_id, chat_key, owner, ttl), ttl):
                    sent_message = perform(sender, call, token)
            except TelegramRequestFailed as exc:
                if exc.retry_after is not None:
                    # Telegram's flood control is per bot as much as per chat: hold every chat of the bot.
                    self._limiter.pause(bot_id, float(exc.retry_after))
                    logger.warning("Telegram said 429; rescheduling", extra={**ids, "retry_after": exc.retry_after})
                    return sent, float(exc.retry_after), False
                report_if_blocked(self._blocked_users, bot_id, call, exc)
                self._give_up(bot_id, chat_key, raw, call, describe_failure(exc), 1)  # 400/403: a retry won't help
                self._queue_refusal_notice(bot_id, chat_key, call, call_id)
                continue
            except BotNotFound as exc:
                self._give_up(bot_id, chat_key, raw, call, describe_failure(exc), 1)
                continue
            except Exception as exc:
                again = self._failed(bot_id, chat_key, raw, call, call_id, exc)
                if again is not None:
                    return sent, again, False
                continue
            sent += 1
            link_sent(self._links, call, sent_message)
            if not done(raw, call_id, was_sent=True):
                # Sent, but the lane's lock passed to another drain meanwhile: mark it sent anyway, so that drain
                # skips it instead of sending it again.
                self._store.mark_sent(call_id)
                return sent, None, True
        return sent, None, False

    def _failed(
        self, bot_id: str, chat_key: str, raw: bytes, call: dict[str, Any], call_id: str, exc: Exception
    ) -> float | None:
        """A failure a retry may fix: the delay before the next attempt, or None once given up."""
        attempts = self._store.record_failure(call_id)
        reason = describe_failure(exc)
        transient = is_transient(exc)
        if not self._policy.gives_up(attempts, transient=transient):
            delay = self._policy.backoff(attempts, transient=transient)
            ids = {"bot_id": bot_id, "call_id": call_id, "method": call.get("method")}
            logger.warning("send failed; retrying", extra={**ids, "retry_in": delay, "error": reason})
            return float(delay)
        self._give_up(bot_id, chat_key, raw, call, reason, attempts)
        return None

    def _queue_refusal_notice(self, bot_id: str, chat_key: str, call: dict[str, Any], call_id: str) -> None:
        """A refused delete_message that carries `if_refused_text`: that text goes to the chat instead (queued
        behind this chat's calls, sent by this drain)."""
        notice = refusal_notice(call)
        if notice is not None:
            raw = json.dumps(notice, ensure_ascii=False, separators=(",", ":")).encode()
            self._store.push(bot_id, chat_key, raw, str(notice["id"]))

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
        # The gateway's request id is the current one while this update is handled: the dispatcher's log lines
        # and its calls to the vault and the registry (gRPC metadata) carry it, one id end to end.
        token = request_id_var.set(valid_request_id(getattr(envelope, "request_id", None)))
        try:
            return self._handle(envelope)
        finally:
            request_id_var.reset(token)

    def _handle(self, envelope: Any) -> Any:
        update = getattr(envelope, "update", None)
        if isinstance(update, dict):
            TELEGRAM_MESSAGES.labels(message_type(update)).inc()
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
