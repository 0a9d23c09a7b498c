"""Webhook delivery as the real server does it.

One request in flight per chat (order kept within a chat), chats in parallel up to the webhook's
max_connections; a non-2xx answer or a connection error is retried after 0.5 s, doubling up to a cap;
a Retry-After header in the webhook's answer is honoured as the next delay.

Each bot has its own keep-alive connections (webhook_client). The per-bot gate is the only queue: the pool never
holds more requests than the gate lets through, so its cost does not grow with the number of pending updates
(httpx's shared pool spent its time re-scanning thousands of queued requests: congestion collapse).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from tgm.tools.telegram_emulator.core import BotState, Emulator, PendingUpdate
from tgm.tools.telegram_emulator.errors import ApiError
from tgm.tools.telegram_emulator.webhook_client import ConnectFailed, RequestFailed, WebhookClient

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 3600.0


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None


class Gate:
    """A semaphore whose limit can change while requests wait (setWebhook with a new max_connections).

    Replacing a semaphore instead would let the old one's waiters and the new one's run side by side, over the cap.
    Waiters are served first come, first served.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # whoever set the result counted us in `active`
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # granted, then cancelled before running: hand the slot on
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self.active -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.active < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter stays queued until it reaches the front
                self.active += 1
                waiter.set_result(None)


class WebhookDelivery:
    def __init__(
        self,
        emulator: Emulator,
        *,
        initial_delay: float = 0.5,
        max_delay: float = 60.0,
        request_timeout: float = 10.0,
        max_in_flight: int = 64,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.emulator = emulator
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.request_timeout = request_timeout
        # All bots together (0: no cap). One event loop serves every bot: with hundreds of fast requests in flight
        # each loop pass gets long and the control API waits (800 in flight: health took ~130 ms, 64: ~12 ms) for no
        # more throughput. Telegram spreads that load over many servers.
        self._all = Gate(max_in_flight) if max_in_flight > 0 else None
        self._sleep = sleep
        self._workers: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._gates: dict[int, Gate] = {}
        self._clients: dict[int, WebhookClient] = {}
        self._started = False
        emulator.on_update = self._on_update

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        await self.cancel_all()
        self._started = False

    async def cancel_all(self, bot_id: int | None = None) -> None:
        tasks = [task for (owner, _), task in self._workers.items() if bot_id is None or owner == bot_id]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if bot_id is None:  # reset or shutdown: the bots are gone, so are their pools
            clients, self._clients = list(self._clients.values()), {}
            self._gates.clear()
            for client in clients:
                await client.close()

    def _client(self, bot: BotState) -> WebhookClient:
        client = self._clients.get(bot.id)
        if client is None:
            client = self._clients[bot.id] = WebhookClient(connect_timeout=self.request_timeout)
        return client

    def _on_update(self, bot: BotState, update: PendingUpdate) -> None:
        self.kick(bot, update.chat_key)

    def kick(self, bot: BotState, chat_key: int | None = None) -> None:
        """Starts a worker for each chat with pending updates (or only `chat_key`) that has none running."""
        if not bot.webhook.url:
            return
        keys = [chat_key] if chat_key is not None else list(bot.queues)
        for key in keys:
            task = self._workers.get((bot.id, key))
            if task is None or task.done():
                self._workers[(bot.id, key)] = asyncio.get_running_loop().create_task(self._run(bot, key))

    def _gate(self, bot: BotState) -> Gate:
        limit = bot.webhook.max_connections
        gate = self._gates.get(bot.id)
        if gate is None:
            gate = self._gates[bot.id] = Gate(limit)
        elif gate.limit != limit:
            gate.resize(limit)
        return gate

    async def _run(self, bot: BotState, chat_key: int) -> None:
        delay = self.initial_delay
        try:
            while True:
                queue = bot.queues.get(chat_key)
                if not queue or not bot.webhook.url or self.emulator.bots.get(bot.id) is not bot:
                    if queue is not None and not queue:
                        del bot.queues[chat_key]
                    return
                item = queue[0]
                async with self._gate(bot):
                    if self._all is None:
                        ok, wait = await self._deliver(bot, item)
                    else:
                        async with self._all:
                            ok, wait = await self._deliver(bot, item)
                if ok:
                    if queue and queue[0] is item:
                        queue.popleft()
                    delay = self.initial_delay
                    continue
                await self._sleep(wait if wait is not None else delay)
                delay = min(delay * 2, self.max_delay)
        finally:
            if self._workers.get((bot.id, chat_key)) is asyncio.current_task():
                del self._workers[(bot.id, chat_key)]

    async def _deliver(self, bot: BotState, item: PendingUpdate) -> tuple[bool, float | None]:
        assert self._started, "delivery not started"
        hook = bot.webhook
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        record: dict[str, Any] = {"update_id": item.update_id, "chat_id": item.chat_key, "at": time.time()}
        bot.deliveries.append(record)
        wait: float | None = None
        telemetry = self.emulator.telemetry
        telemetry.delivery_started(bot.id)
        ok = False
        try:
            async with asyncio.timeout(self.request_timeout):
                response = await self._client(bot).post(hook.url, orjson.dumps(item.payload), headers)
        except TimeoutError:
            error = "Read timeout expired"
        except ConnectFailed:
            error = "Connection refused"
        except (RequestFailed, OSError, ValueError) as exc:  # ValueError: a URL that cannot be used
            error = f"Connection failed: {type(exc).__name__}"
        else:
            status = response.status
            record["status"] = status
            if 200 <= status < 300:
                record["ok"] = ok = True
                self._webhook_reply(bot, response.headers.get("content-type", ""), response.body)
                return True, None
            error = f"Wrong response from the webhook: {status} {response.reason}".rstrip()
            wait = _retry_after(response.headers.get("retry-after"))
            if wait is not None:
                record["retry_after"] = wait
        finally:
            telemetry.delivery_finished(bot.id, item.chat_key, item.update_id, ok)
        record["ok"] = False
        record["error"] = error
        hook.last_error_date = self.emulator.now()
        hook.last_error_message = error
        log.info("webhook delivery failed for bot %s update %s: %s", bot.id, item.update_id, error)
        return False, wait

    def _webhook_reply(self, bot: BotState, content_type: str, content: bytes) -> None:
        """The real server runs a Bot API method given in the webhook's answer body."""
        if not content or "json" not in content_type:
            return
        try:
            body = json.loads(content)
        except ValueError:
            return
        if isinstance(body, dict) and isinstance(body.get("method"), str):
            params = {k: v for k, v in body.items() if k != "method"}
            with contextlib.suppress(ApiError):
                self.emulator.call(bot, body["method"], params)
