"""DirectOutbox keeps an opened bot token for a short while instead of calling the vault on every send."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.unit.dispatcher.test_actors import make_bot
from tgm.domain.bots import Bot, BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.errors import TokenRejected
from tgm.domain.outbound import SendMessage
from tgm.services.dispatcher.adapters.direct_outbox import DirectOutbox

TOKEN = "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


class Bots:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def get_bot(self, bot_id: str) -> Bot | None:
        return self.bot if bot_id == self.bot.id else None


class CountingVault:
    def __init__(self) -> None:
        self.decrypts: list[bytes] = []

    def encrypt(self, bot_ref: str, kind: Any, plaintext: str) -> bytes:
        raise AssertionError("not used")

    def decrypt(self, bot_ref: str, kind: Any, purpose: Any, ciphertext: bytes) -> str:
        self.decrypts.append(ciphertext)
        return TOKEN


class Telegram:
    def __init__(self) -> None:
        self.sent: list[tuple[BotToken, int, str]] = []
        self.reject = False

    def send_message(self, token: BotToken, message: SendMessage) -> None:
        if self.reject:
            raise TokenRejected("Telegram sendMessage: the bot token was rejected")
        self.sent.append((token, message.chat_id, message.text))


def _rig(**kwargs: Any) -> tuple[DirectOutbox, Bots, CountingVault, Telegram, ManualClock]:
    bots, vault, telegram, clock = Bots(make_bot()), CountingVault(), Telegram(), ManualClock()
    outbox = DirectOutbox(bots, vault, telegram, clock, **kwargs)  # type: ignore[arg-type]
    return outbox, bots, vault, telegram, clock


def test_two_sends_open_the_token_once() -> None:
    outbox, _, vault, telegram, _ = _rig()
    outbox.send("bot-1", SendMessage(1, "a"))
    outbox.send("bot-1", SendMessage(1, "b"))
    assert len(vault.decrypts) == 1
    assert [text for _, _, text in telegram.sent] == ["a", "b"]
    assert telegram.sent[0][0].reveal() == TOKEN


def test_a_changed_sealed_token_is_opened_anew() -> None:
    outbox, bots, vault, _, _ = _rig()
    outbox.send("bot-1", SendMessage(1, "a"))
    bots.bot = dataclasses.replace(bots.bot, sealed_token=b"resealed")
    outbox.send("bot-1", SendMessage(1, "b"))
    assert vault.decrypts == [b"sealed", b"resealed"]


def test_an_expired_token_is_opened_anew() -> None:
    outbox, _, vault, _, clock = _rig(token_ttl_seconds=60)
    outbox.send("bot-1", SendMessage(1, "a"))
    clock.advance(59)
    outbox.send("bot-1", SendMessage(1, "b"))
    assert len(vault.decrypts) == 1
    clock.advance(2)
    outbox.send("bot-1", SendMessage(1, "c"))
    assert len(vault.decrypts) == 2


def test_a_rejected_token_is_forgotten() -> None:
    outbox, _, vault, telegram, _ = _rig()
    outbox.send("bot-1", SendMessage(1, "a"))
    telegram.reject = True
    with pytest.raises(TokenRejected):
        outbox.send("bot-1", SendMessage(1, "b"))
    telegram.reject = False
    outbox.send("bot-1", SendMessage(1, "c"))
    assert len(vault.decrypts) == 2


def test_the_cache_is_capped_dropping_the_oldest() -> None:
    outbox, bots, vault, _, _ = _rig(max_cached_tokens=2)
    for sealed in (b"s1", b"s2", b"s3"):
        bots.bot = dataclasses.replace(bots.bot, sealed_token=sealed)
        outbox.token("bot-1")
    bots.bot = dataclasses.replace(bots.bot, sealed_token=b"s3")
    outbox.token("bot-1")  # still cached
    bots.bot = dataclasses.replace(bots.bot, sealed_token=b"s1")
    outbox.token("bot-1")  # dropped: opened again
    assert vault.decrypts == [b"s1", b"s2", b"s3", b"s1"]
