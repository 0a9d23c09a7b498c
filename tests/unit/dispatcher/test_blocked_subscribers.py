"""Issue 15: a send refused with Telegram's 403 "bot was blocked by the user" makes the user a subscriber who
blocked the bot (reported to the registry, from the queued drain and from a direct send alike); their next
interaction makes them active again. Other refusals report nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import FakeTelegram
from tgm.domain.administration.bot_administration import BotAdministration
from tgm.domain.administration.ports import BlockedByUser
from tgm.domain.administration.register_bot import RegisterBot
from tgm.domain.bots import Bot, BotSettings, BotStatus, BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.errors import TelegramRequestFailed
from tgm.domain.lane import LockKeeper
from tgm.domain.outbound import OutboundCall
from tgm.services.botregistry.adapters.memory import InMemoryBotRepository, InMemoryInteractionStats
from tgm.services.dispatcher.adapters.memory import InMemoryDeadLetters, InMemoryLocks
from tgm.services.dispatcher.adapters.subscribers import RegistryBlockedUsers
from tgm.services.dispatcher.outbound.calls import QueuedCall
from tgm.services.dispatcher.outbound.direct_send import DirectSend
from tgm.services.dispatcher.outbound.drain import DrainOutbox
from tgm.services.dispatcher.outbound.store import InMemoryOutboxStore

BLOCKED = TelegramRequestFailed(403, "Forbidden: bot was blocked by the user")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
OWNER, USER = 1001, 77


class RefusingSender:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def token(self, bot_id: str) -> BotToken:
        return BotToken("123:" + "a" * 35)

    def send(self, bot_id: str, call: OutboundCall, token: BotToken | None = None) -> None:
        raise self.error


class OpenLimiter:
    def acquire(self, bot_id: str, chat_id: int | None) -> float:
        return 0.0

    def pause(self, bot_id: str, seconds: float) -> None:
        raise AssertionError("no 429 here")


class OpenGate:
    def open(self, bot_id: str, chat_key: str, chat_id: int | None, call_id: str) -> bool:
        return True


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def blocked(self, bot_id: str, telegram_user_id: int) -> None:
        self.seen.append((bot_id, telegram_user_id))


def call_to(chat_id: int) -> dict[str, Any]:
    return {"id": "c1", "bot_id": "b", "chat_id": chat_id, "method": "send_message", "params": {"text": "hi"}}


def drain_once(error: Exception, chat_id: int, reporter: Any) -> InMemoryDeadLetters:
    store, dead = InMemoryOutboxStore(), InMemoryDeadLetters()
    sender = RefusingSender(error)
    outbox = DrainOutbox(
        store,
        InMemoryLocks(),
        OpenLimiter(),
        lambda: sender,
        dead,
        blocked_users=reporter,  # type: ignore[arg-type, return-value]
        keeper=LockKeeper(),  # nothing runs it: the work here ends within the lock's TTL
    )
    store.push("b", str(chat_id), json.dumps(call_to(chat_id)).encode(), "c1")
    outbox("b", str(chat_id))
    return dead


def direct_once(error: Exception, chat_id: int, reporter: Any) -> str:
    store, dead = InMemoryOutboxStore(), InMemoryDeadLetters()
    sender = RefusingSender(error)
    direct = DirectSend(
        OpenGate(),
        store,
        lambda: sender,
        dead,
        OpenLimiter(),
        blocked_users=reporter,  # type: ignore[arg-type, return-value]
    )
    return direct(QueuedCall.from_wire(call_to(chat_id)))


@pytest.mark.parametrize("send", [drain_once, direct_once])
def test_a_user_who_blocked_the_bot_is_reported_once_the_send_is_refused(send: Any) -> None:
    recorder = Recorder()
    send(BLOCKED, USER, recorder)
    assert recorder.seen == [("b", USER)]


@pytest.mark.parametrize("send", [drain_once, direct_once])
@pytest.mark.parametrize(
    ("error", "chat_id"),
    [
        (TelegramRequestFailed(403, "Forbidden: bot was kicked from the group chat"), -100),
        (TelegramRequestFailed(403, "Forbidden: bot was blocked by the user"), -100),  # not a private chat
        (TelegramRequestFailed(403, "Forbidden: user is deactivated"), USER),
        (TelegramRequestFailed(400, "Bad Request: chat not found"), USER),
    ],
)
def test_other_refusals_report_nothing(send: Any, error: Exception, chat_id: int) -> None:
    recorder = Recorder()
    send(error, chat_id, recorder)
    assert recorder.seen == []


def test_the_refused_call_is_still_dead_lettered_when_the_registry_is_down() -> None:
    class DownSink:
        def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int:
            raise ConnectionError("registry down")

    dead = drain_once(BLOCKED, USER, RegistryBlockedUsers(DownSink(), ManualClock(NOW)))
    assert len(dead.list()) == 1


def test_403_then_blocked_then_back_when_they_write_again() -> None:
    clock = ManualClock(NOW)
    bots, stats = InMemoryBotRepository(), InMemoryInteractionStats()
    telegram, vault = FakeTelegram(), InMemoryTokenVault()
    admin = BotAdministration(
        bots=bots,
        manager=bots,
        telegram=telegram,
        vault=vault,
        clock=clock,
        register_bot=RegisterBot(bots, telegram, vault, clock, "https://hooks.test"),
        stats=stats,
    )
    bots.add(Bot("b", "p", OWNER, 1, "shop_bot", BotStatus.ACTIVE, b"s", b"h", BotSettings(), NOW, NOW))
    admin.record_interaction("b", USER, None)  # the user started the bot
    clock.advance(60)

    drain_once(BLOCKED, USER, RegistryBlockedUsers(admin, clock))  # the reply to them is refused: blocked

    _bot, counts = admin.subscriber_stats(OWNER, "b")
    assert (counts.total, counts.active, counts.blocked_bot) == (1, 0, 1)
    clock.advance(60)
    admin.record_interaction("b", USER, None)  # they unblocked the bot and wrote again
    _bot, counts = admin.subscriber_stats(OWNER, "b")
    assert (counts.total, counts.active, counts.blocked_bot) == (1, 1, 0)
