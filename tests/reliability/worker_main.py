"""`python -m tests.reliability.worker_main`: the real dispatcher (`serve`, Redis adapters, actors) with the
registry and vault replaced by fixtures from TEST_BOTS_JSON, so reliability tests need no gRPC services.

TEST_BOTS_JSON: [{"bot_id", "username", "token", "telegram_bot_id", "custom_commands": {...},
"api_commands": {"/cmd": {"url", "method", "timeout_seconds"}}}]. Test scaffolding only.

A spec may carry `"is_manager": true` and `"owner_id"` (default 1). TEST_SUBSCRIBERS_JSON (optional):
{bot_id: [telegram user ids]}: the manager bot's admin side (FixtureAdmin) then answers for those bots' owners, as
the registry would (a bot not the actor's is BotNotFound), so broadcasts run for real.

TEST_SLOW_UPDATE_TEXT (optional): an update with exactly this text is handled for real, then the handler sets
`tgm:test:slow:{bot_id}:{update_id}` in Redis and hangs for TEST_SLOW_UPDATE_SECONDS (default 600): the update's
reply is queued (or sent) but the update is not marked done — a worker to kill "in the middle" of an update.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from dependency_injector import providers

from tgm.domain.administration.ports import (
    BotStats,
    InteractionBatchResult,
    Subscriber,
    SubscriberStats,
    SubscriberStatus,
)
from tgm.domain.bots import ApiCommand, Bot, BotSettings, BotStatus
from tgm.domain.errors import BotNotFound
from tgm.observability.logging import configure_logging
from tgm.services.dispatcher.__main__ import serve
from tgm.services.dispatcher.settings import DispatcherSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class StaticBots:
    def __init__(self, bots: dict[str, Bot]) -> None:
        self._bots = bots

    def get_bot(self, bot_id: str) -> Bot | None:
        return self._bots.get(bot_id)

    # The bot-change listener's calls: fixtures never change, so there is nothing cached to forget.
    def forget(self, bot_id: str) -> None:
        return None

    def invalidate(self) -> None:
        return None


class FixtureVault:
    def __init__(self, tokens: dict[bytes, str]) -> None:
        self._tokens = tokens

    def encrypt(self, bot_ref: str, kind: Any, plaintext: str) -> bytes:
        raise NotImplementedError

    def decrypt(self, bot_ref: str, kind: Any, purpose: Any, ciphertext: bytes) -> str:
        return self._tokens[ciphertext]


class NullAdmin:
    """No registry here: interaction stats are dropped."""

    def record_interaction(self, *args: Any, **kwargs: Any) -> None:
        return None

    def record_interactions(self, interactions: Any) -> InteractionBatchResult:
        """The stats flusher's batch call (issue 8)."""
        return InteractionBatchResult(stored=len(interactions))


class FixtureAdmin(NullAdmin):
    """The registry's admin side for the manager bot, from fixtures: each bot's owner, its subscribers."""

    def __init__(self, bots: StaticBots, subscribers: dict[str, list[int]]) -> None:
        self._bots = bots
        self._subscribers = {bot_id: sorted(users) for bot_id, users in subscribers.items()}

    def _owned(self, actor_id: int, bot_id: str) -> Bot:
        bot = self._bots.get_bot(bot_id)
        if bot is None or bot.owner_id != actor_id or bot.is_manager:
            raise BotNotFound("no such bot")
        return bot

    def list_bots(self, owner_id: int) -> list[Bot]:
        return [bot for bot in self._bots._bots.values() if bot.owner_id == owner_id and not bot.is_manager]

    def details(self, actor_id: int, bot_id: str) -> tuple[Bot, BotStats]:
        return self._owned(actor_id, bot_id), BotStats()

    def subscriber_stats(self, actor_id: int, bot_id: str) -> tuple[Bot, SubscriberStats]:
        users = self._subscribers.get(bot_id, [])
        return self._owned(actor_id, bot_id), SubscriberStats(total=len(users), active=len(users))

    def list_subscribers(self, actor_id: int, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        self._owned(actor_id, bot_id)
        page = [user for user in self._subscribers.get(bot_id, []) if user > after_user_id][:limit]
        return [Subscriber(user, NOW, NOW, SubscriberStatus.ACTIVE) for user in page]


def load() -> tuple[StaticBots, FixtureVault]:
    bots: dict[str, Bot] = {}
    tokens: dict[bytes, str] = {}
    for spec in json.loads(os.environ["TEST_BOTS_JSON"]):
        sealed = f"sealed-{spec['bot_id']}".encode()
        tokens[sealed] = spec["token"]
        api = {name: ApiCommand(**cmd) for name, cmd in spec.get("api_commands", {}).items()}
        bots[spec["bot_id"]] = Bot(
            id=spec["bot_id"],
            public_id=spec["bot_id"],
            owner_id=int(spec.get("owner_id", 1)),
            telegram_bot_id=int(spec["telegram_bot_id"]),
            username=spec["username"],
            status=BotStatus.ACTIVE,
            sealed_token=sealed,
            webhook_secret_sha256=b"",
            settings=BotSettings(
                welcome_text="hello", language="en", custom_commands=spec.get("custom_commands", {}), api_commands=api
            ),
            created_at=NOW,
            updated_at=NOW,
            is_manager=bool(spec.get("is_manager", False)),
        )
    return StaticBots(bots), FixtureVault(tokens)


class SlowOnText:
    """Wraps the real handler: after handling the update whose text is `text`, signals it and hangs."""

    def __init__(self, inner: Any, text: str, seconds: float, redis_url: str) -> None:
        import redis

        self._inner = inner
        self._text = text
        self._seconds = seconds
        self._client = redis.Redis.from_url(redis_url)

    def __call__(self, envelope: Any) -> Any:
        outcome = self._inner(envelope)
        if (envelope.update.get("message") or {}).get("text") == self._text:
            self._client.set(f"tgm:test:slow:{envelope.bot_id}:{envelope.update_id}", b"1", ex=3600)
            logging.getLogger(__name__).info("slow handler: hanging", extra={"s": self._seconds})
            time.sleep(self._seconds)
        return outcome


def main() -> int:
    settings = DispatcherSettings()
    configure_logging("dispatcher", settings.log_level)
    logging.getLogger("dramatiq").setLevel(logging.INFO)
    directory, vault = load()

    def prepare(container: Any) -> None:
        container.bot_directory.override(providers.Object(directory))
        container.vault.override(providers.Object(vault))
        if hasattr(container, "bot_admin"):  # the manager bot's registry client (issue 3)
            subscribers = json.loads(os.environ.get("TEST_SUBSCRIBERS_JSON") or "{}")
            admin = FixtureAdmin(directory, subscribers) if subscribers else NullAdmin()
            container.bot_admin.override(providers.Object(admin))
        slow_text = os.environ.get("TEST_SLOW_UPDATE_TEXT")
        if slow_text:
            seconds = float(os.environ.get("TEST_SLOW_UPDATE_SECONDS", "600"))
            # Around the handler as the chat drain runs it (replies sent inline): the reply is out, the update not done.
            slow = SlowOnText(container.flushing_handler(), slow_text, seconds, settings.redis_url)
            container.flushing_handler.override(providers.Object(slow))

    return serve(settings, prepare)


if __name__ == "__main__":
    sys.exit(main())
