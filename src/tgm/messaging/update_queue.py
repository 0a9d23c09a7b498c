"""The contract of the "updates" queue, shared by the gateway (producer) and the dispatcher (consumer).

The gateway builds Dramatiq messages by name so it never imports the dispatcher's package.

Per-chat order: an update is appended to its chat's mailbox (src/tgm/messaging/mailbox.py) and a
`drain_chat(bot_id, chat_key)` message, ids only, is enqueued **unless one is already due** for that chat
(the mailbox's drain-pending flag): a burst of N updates to one chat costs one drain message, not N. The
drain clears the flag before it reads the mailbox (src/tgm/domain/use_cases/drain_chat.py), so an update pushed
after that point schedules a new drain and none is left waiting. `handle_update(envelope)` is kept for
messages queued by an older gateway: the dispatcher moves them into the mailbox.

Adapters:
- `MailboxUpdateQueue` (sync; embedded mode and the dispatcher's legacy hand-over): push, flag, enqueue.
- `RedisUpdateQueue` (async, the gateway in Redis mode): the same three steps in ONE Lua script on
  `redis.asyncio`, writing the drain message in Dramatiq's own Redis layout (the `enqueue` branch of
  dramatiq/brokers/redis/dispatch.lua: HSET `<ns>:<queue>.msgs` id data, RPUSH `<ns>:<queue>` id), so the
  update and its drain are stored atomically in one round trip and Dramatiq's consumers read it unchanged.
- `InProcessUpdateQueue` (async facade over the sync one, embedded mode: in-memory, never blocks).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

import dramatiq
import orjson
from redis.exceptions import NoScriptError

from tgm.domain.inbound import chat_key_of
from tgm.domain.ports import ChatMailbox, UpdateQueue
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.envelope_signing import EnvelopeSigner
from tgm.messaging.mailbox import (
    DRAIN_PENDING_TTL_MS,
    KEY_PREFIX,
    MAX_ITEMS_PER_CHAT,
    drain_pending_key,
    encode,
    mailbox_key,
)
from tgm.observability.ids import new_message_id

logger = logging.getLogger(__name__)

UPDATES_QUEUE = "updates"
HANDLE_UPDATE_ACTOR = "handle_update"
DRAIN_CHAT_ACTOR = "drain_chat"
DRAMATIQ_NAMESPACE = "dramatiq"  # RedisBroker's default key prefix

# KEYS: mailbox, drain-pending flag, Dramatiq queue list, Dramatiq message hash.
# ARGV: envelope, cap, flag TTL ms, Dramatiq redis message id, encoded Dramatiq message.
# Returns 0 (mailbox full: dropped), 1 (stored; a drain was already due), 2 (stored and a drain enqueued).
_PUSH_AND_SCHEDULE = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
  redis.call('RPUSH', KEYS[3], ARGV[4])
  return 2
end
return 1
"""


def drain_chat_message(bot_id: str, chat_key: str, request_id: str | None = None) -> dramatiq.Message[None]:
    options = {"request_id": request_id} if request_id else {}
    return dramatiq.Message(
        queue_name=UPDATES_QUEUE, actor_name=DRAIN_CHAT_ACTOR, args=(bot_id, chat_key), kwargs={}, options=options
    )


def encoded_drain_chat_message(bot_id: str, chat_key: str, request_id: str | None = None) -> tuple[str, bytes]:
    """(redis message id, bytes) of the message `drain_chat_message` builds, as RedisBroker would store it.

    Built by hand because Dramatiq's `Message.copy` + `encode` (dataclasses.replace, stdlib json) cost more than
    the rest of the gateway's enqueue; `Message.decode` reads it back (a unit test holds the two equal).
    """
    message_id = new_message_id()
    options: dict[str, Any] = {"request_id": request_id} if request_id else {}
    options["redis_message_id"] = message_id
    data = {
        "queue_name": UPDATES_QUEUE,
        "actor_name": DRAIN_CHAT_ACTOR,
        "args": [bot_id, chat_key],
        "kwargs": {},
        "options": options,
        "message_id": message_id,
        "message_timestamp": int(time.time() * 1000),
    }
    return message_id, orjson.dumps(data)


def _log_dropped(envelope: UpdateEnvelope) -> None:
    # The chat's mailbox is full (a flood): the gateway still answers 200, so Telegram does not redeliver
    # it into the same flood. A drain is already due for this chat.
    logger.warning(
        "chat mailbox full; update dropped",
        extra={"bot_id": envelope.bot_id, "update_id": envelope.update_id, "request_id": envelope.request_id},
    )


class MailboxUpdateQueue:
    """UpdateQueue adapter: push to the chat's mailbox; enqueue a `drain_chat` message if none is due.

    If the push succeeds and the enqueue fails, the caller fails (the gateway answers 503) and Telegram
    redelivers: the update may then sit twice in the mailbox, and dedup on (bot, update_id) makes the second
    a no-op; the flag is cleared again so the redelivery schedules the drain.
    """

    def __init__(self, broker: dramatiq.Broker, mailbox: ChatMailbox) -> None:
        self._broker = broker
        self._mailbox = mailbox

    def enqueue(self, envelope: UpdateEnvelope) -> bool:
        chat_key = chat_key_of(envelope)
        if not self._mailbox.push(chat_key, envelope):
            _log_dropped(envelope)
            return False
        if self._mailbox.mark_drain_pending(envelope.bot_id, chat_key):
            try:
                self._broker.enqueue(drain_chat_message(envelope.bot_id, chat_key, envelope.request_id))
            except Exception:
                self._mailbox.clear_drain_pending(envelope.bot_id, chat_key)
                raise
        return True


class InProcessUpdateQueue:
    """AsyncUpdateQueue over a sync queue whose calls never block (embedded mode: in-memory mailbox and broker)."""

    def __init__(self, queue: UpdateQueue) -> None:
        self._queue = queue

    async def enqueue(self, envelope: UpdateEnvelope) -> bool:
        return self._queue.enqueue(envelope)

    async def close(self) -> None:
        return None


class RedisUpdateQueue:
    """AsyncUpdateQueue on `redis.asyncio`: mailbox push + coalesced drain message in one round trip.

    Concurrent requests share round trips: every enqueue made during one turn of the event loop goes out in one
    pipeline (EVALSHA each, no transaction: each script is atomic on its own), and each caller awaits its own
    result. Under load this replaces N request/response exchanges with one; alone, a request waits no longer
    than the loop turn it was made in.
    """

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = DRAMATIQ_NAMESPACE,
        prefix: str = KEY_PREFIX,
        max_items: int = MAX_ITEMS_PER_CHAT,
        signer: EnvelopeSigner | None = None,
    ) -> None:
        self._client = client
        self._signer = signer
        self._sha = hashlib.sha1(_PUSH_AND_SCHEDULE.encode(), usedforsecurity=False).hexdigest()
        self._pending: list[tuple[list[Any], asyncio.Future[int]]] = []
        self._flush_scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self._queue_key = f"{namespace}:{UPDATES_QUEUE}"
        self._messages_key = f"{namespace}:{UPDATES_QUEUE}.msgs"
        self._prefix = prefix
        self._max_items = max_items

    async def enqueue(self, envelope: UpdateEnvelope) -> bool:
        chat_key = chat_key_of(envelope)
        message_id, message = encoded_drain_chat_message(envelope.bot_id, chat_key, envelope.request_id)
        keys = [
            mailbox_key(envelope.bot_id, chat_key, self._prefix),
            drain_pending_key(envelope.bot_id, chat_key, self._prefix),
            self._queue_key,
            self._messages_key,
        ]
        args = [encode(envelope, self._signer), self._max_items, DRAIN_PENDING_TTL_MS, message_id, message]
        stored = await self._submit([*keys, *args])
        if stored == 0:
            _log_dropped(envelope)
            return False
        return True

    async def _submit(self, keys_and_args: list[Any]) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((keys_and_args, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._start_flush)  # after every request that is ready in this turn has submitted
        return await future

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._flushes.add(task)  # keep a reference until done (the loop holds tasks weakly)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[list[Any], asyncio.Future[int]]]) -> None:
        try:
            results = await self._run(batch)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away (cancelled): its update is stored anyway
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(int(result))

    async def _run(self, batch: list[tuple[list[Any], asyncio.Future[int]]]) -> list[Any]:
        calls = [keys_and_args for keys_and_args, _ in batch]
        results = await self._evalsha_all(calls)
        missing = [index for index, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            # A fresh or restarted Redis has no script cache; a NOSCRIPT reply means that call did nothing.
            await self._client.script_load(_PUSH_AND_SCHEDULE)
            retried = await self._evalsha_all([calls[index] for index in missing])
            for index, result in zip(missing, retried, strict=True):
                results[index] = result
        return results

    async def _evalsha_all(self, calls: list[list[Any]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys_and_args in calls:
            pipe.execute_command("EVALSHA", self._sha, 4, *keys_and_args)
        return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        for task in list(self._flushes):
            await asyncio.gather(task, return_exceptions=True)
        await self._client.aclose()
