"""External-API commands: a bot command that calls an HTTP API and replies with the answer.

HandleUpdate schedules an `ApiCallJob` (so the chat's drain is never blocked by a slow API) and
`RunApiCall` executes it: one attempt per job run, exponential backoff with jitter between attempts,
then the dead letters. The API's circuit breaker lives in the ExternalApi adapter, shared by workers.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tgm.domain.bots import ApiCommand, Bot
from tgm.domain.effects import EffectIds
from tgm.domain.errors import DomainError
from tgm.domain.messages import render
from tgm.domain.outbound import SendMessage
from tgm.domain.ports import ApiCallJob, ApiCallScheduler, BotDirectory, Clock, DeadLetters, ExternalApi, Locks, Outbox
from tgm.domain.url_policy import is_allowed_url
from tgm.domain.use_cases.drain_chat import describe_failure

logger = logging.getLogger(__name__)

MAX_REPLY_CHARS = 3500


class ExternalApiFailed(DomainError):
    """The API call failed; `retryable` is False for answers a retry cannot change (4xx)."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class CircuitOpen(ExternalApiFailed):
    """The API's breaker is open: the call was not made."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """'Equal jitter': half the exponential step fixed, half random; attempt 1 → ~base."""
        step = min(self.max_seconds, self.base_seconds * (2 ** max(0, attempt - 1)))
        return float(step / 2 + rand() * step / 2)


def job_to_message(job: ApiCallJob) -> dict[str, Any]:
    return asdict(job)


def job_from_message(data: dict[str, Any]) -> ApiCallJob:
    return ApiCallJob(
        job_id=str(data["job_id"]),
        bot_id=str(data["bot_id"]),
        chat_id=int(data["chat_id"]),
        user_id=int(data["user_id"]),
        command=str(data["command"]),
        argument=str(data.get("argument", "")),
        language=data.get("language") if isinstance(data.get("language"), str) else None,
        lock_key=str(data["lock_key"]),
        lock_owner=str(data["lock_owner"]),
        attempt=int(data.get("attempt", 0)),
    )


class StartApiCall:
    """Used by HandleUpdate: answers at once when the breaker is open or a call is running, else schedules."""

    def __init__(
        self,
        api: ExternalApi,
        scheduler: ApiCallScheduler,
        locks: Locks,
        outbox: Outbox,
        lock_ttl_seconds: float,
        allow_private: bool = False,
    ) -> None:
        self._api = api
        self._allow_private = allow_private
        self._scheduler = scheduler
        self._locks = locks
        self._outbox = outbox
        self._lock_ttl = lock_ttl_seconds

    def __call__(
        self,
        bot: Bot,
        command: str,
        spec: ApiCommand,
        chat_id: int,
        user_id: int,
        argument: str,
        lang: str | None,
        *,
        effects: EffectIds,
    ) -> str:
        """`effects`: the update's (its refusals are its replies)."""
        language = lang or bot.settings.language

        def say(key: str) -> None:
            self._outbox.send(bot.id, SendMessage(chat_id, render(key, language)), effect_id=effects.next())

        if not is_allowed_url(spec.url, self._allow_private):  # the adapter checks the resolved address too
            say("api_failed")
            return "api:refused_url"
        if self._api.is_open(spec.url, scope=bot.id):
            say("api_unavailable")
            return "api:circuit_open"
        lock_key = f"api:{bot.id}:{user_id}:{command}"
        owner = self._locks.acquire(lock_key, self._lock_ttl)
        if owner is None:
            say("locked")
            return "api:locked"
        job = ApiCallJob(
            job_id=uuid.uuid4().hex,
            bot_id=bot.id,
            chat_id=chat_id,
            user_id=user_id,
            command=command,
            argument=argument,
            language=language,
            lock_key=lock_key,
            lock_owner=owner,
        )
        try:
            self._scheduler.schedule(job)
        except Exception:
            self._locks.release(lock_key, owner)
            raise
        return "api:scheduled"


@dataclass(frozen=True)
class ApiCallResult:
    status: str  # "replied" | "retry" | "dead_letter" | "dropped"
    retry_in: float | None = None
    dead_letter_id: str | None = None


class RunApiCall:
    """One attempt of an ApiCallJob; the caller reschedules when told `retry`."""

    def __init__(
        self,
        bots: BotDirectory,
        api: ExternalApi,
        outbox: Outbox,
        locks: Locks,
        dead_letters: DeadLetters,
        clock: Clock,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._bots = bots
        self._api = api
        self._outbox = outbox
        self._locks = locks
        self._dead = dead_letters
        self._clock = clock
        self._policy = policy or RetryPolicy()

    def __call__(self, job: ApiCallJob) -> ApiCallResult:
        # The reply's outbound id derives from (job, attempt): a redelivered attempt replies once.
        return self._run(job, EffectIds(f"api:{job.job_id}:{job.attempt}"))

    def _run(self, job: ApiCallJob, effects: EffectIds) -> ApiCallResult:
        ids = {"bot_id": job.bot_id, "job_id": job.job_id, "attempt": job.attempt + 1}
        bot = self._bots.get_bot(job.bot_id)
        spec = bot.settings.api_commands.get(job.command) if bot is not None and bot.serves_updates else None
        if bot is None or spec is None:
            self._locks.release(job.lock_key, job.lock_owner)
            logger.info("api call dropped: bot or command gone", extra=ids)
            return ApiCallResult("dropped")
        payload = {"command": job.command, "text": job.argument}
        try:
            body = self._api.call(spec.url, spec.method, spec.timeout_seconds, payload, scope=job.bot_id)
        except Exception as exc:
            reason = describe_failure(exc)
            attempts = job.attempt + 1
            retryable = not isinstance(exc, ExternalApiFailed) or exc.retryable
            if retryable and attempts < self._policy.max_attempts:
                delay = self._policy.delay(attempts)
                logger.warning("api call failed; retrying", extra={**ids, "retry_in": delay, "error": reason})
                return ApiCallResult("retry", retry_in=delay)
            now = self._clock.now().timestamp()
            letter_id = self._dead.add("api_call", job_to_message(job), reason, attempts, now)
            logger.error("api call failed for good", extra={**ids, "dead_letter_id": letter_id, "error": reason})
            key = "api_unavailable" if isinstance(exc, CircuitOpen) else "api_failed"
            reply = SendMessage(job.chat_id, render(key, job.language))
            self._outbox.send(job.bot_id, reply, effect_id=effects.next())
            self._locks.release(job.lock_key, job.lock_owner)
            return ApiCallResult("dead_letter", dead_letter_id=letter_id)
        text = body.strip()[:MAX_REPLY_CHARS] or render("api_empty", job.language)
        self._outbox.send(job.bot_id, SendMessage(job.chat_id, text), effect_id=effects.next())
        self._locks.release(job.lock_key, job.lock_owner)
        logger.info("api call answered", extra=ids)
        return ApiCallResult("replied")
