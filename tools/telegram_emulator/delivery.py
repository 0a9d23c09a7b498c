"""Webhook delivery as the real server does it.

One request in flight per chat (order kept within a chat), chats in parallel up to the webhook's
max_connections; a non-2xx answer or a connection error is retried after 0.5 s, doubling up to a cap;
a Retry-After header in the webhook's answer is honoured as the next delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from tools.telegram_emulator.core import BotState, Emulator, PendingUpdate
from tools.telegram_emulator.errors import ApiError

log = logging.getLogger("telegram_emulator.delivery")

MAX_RETRY_AFTER = 3600.0


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None


class WebhookDelivery:
    def __init__(
        self,
        emulator: Emulator,
        *,
        initial_delay: float = 0.5,
        max_delay: float = 60.0,
        request_timeout: float = 10.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.emulator = emulator
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.request_timeout = request_timeout
        self._sleep = sleep
        self._workers: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._limits: dict[int, tuple[int, asyncio.Semaphore]] = {}
        self._client: httpx.AsyncClient | None = None
        emulator.on_update = self._on_update

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.request_timeout, follow_redirects=False)

    async def stop(self) -> None:
        await self.cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def cancel_all(self, bot_id: int | None = None) -> None:
        tasks = [task for (owner, _), task in self._workers.items() if bot_id is None or owner == bot_id]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

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

    def _semaphore(self, bot: BotState) -> asyncio.Semaphore:
        limit = bot.webhook.max_connections
        current = self._limits.get(bot.id)
        if current is None or current[0] != limit:
            current = (limit, asyncio.Semaphore(limit))
            self._limits[bot.id] = current
        return current[1]

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
                async with self._semaphore(bot):
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
        assert self._client is not None, "delivery not started"
        hook = bot.webhook
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        record: dict[str, Any] = {"update_id": item.update_id, "chat_id": item.chat_key, "at": time.time()}
        bot.deliveries.append(record)
        wait: float | None = None
        try:
            response = await self._client.post(hook.url, json=item.payload, headers=headers)
        except httpx.TimeoutException:
            error = "Read timeout expired"
        except httpx.ConnectError:
            error = "Connection refused"
        except httpx.HTTPError as exc:
            error = f"Connection failed: {type(exc).__name__}"
        else:
            record["status"] = response.status_code
            if 200 <= response.status_code < 300:
                record["ok"] = True
                self._webhook_reply(bot, response)
                return True, None
            error = f"Wrong response from the webhook: {response.status_code} {response.reason_phrase}".rstrip()
            wait = _retry_after(response)
            if wait is not None:
                record["retry_after"] = wait
        record["ok"] = False
        record["error"] = error
        hook.last_error_date = self.emulator.now()
        hook.last_error_message = error
        log.info("webhook delivery failed for bot %s update %s: %s", bot.id, item.update_id, error)
        return False, wait

    def _webhook_reply(self, bot: BotState, response: httpx.Response) -> None:
        """The real server runs a Bot API method given in the webhook's answer body."""
        if not response.content or "json" not in response.headers.get("content-type", ""):
            return
        try:
            body = response.json()
        except ValueError:
            return
        if isinstance(body, dict) and isinstance(body.get("method"), str):
            params = {k: v for k, v in body.items() if k != "method"}
            with contextlib.suppress(ApiError):
                self.emulator.call(bot, body["method"], params)
