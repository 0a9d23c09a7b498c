"""RegisterBot use case against InMemoryBotRepository, the in-memory vault and a fake Telegram."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.fake_vault import InMemoryTokenVault
from tests.unit.registry.fakes import TOKEN, TOKEN_2, FakeTelegram
from tgm.domain.administration.register_bot import RegisterBot, RegisterBotCommand
from tgm.domain.bots import BotStatus, BotToken
from tgm.domain.clock import ManualClock
from tgm.domain.errors import BotOwnedByAnotherAdmin, TelegramRequestFailed, TelegramUnavailable, TokenRejected
from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.services.botregistry.adapters.memory import InMemoryBotRepository

BASE_URL = "https://hooks.example.test/"
OWNER = 1001
OTHER_OWNER = 2002


class Setup:
    def __init__(self) -> None:
        self.bots = InMemoryBotRepository()
        self.telegram = FakeTelegram()
        self.vault = InMemoryTokenVault()
        self.clock = ManualClock()
        self.register = RegisterBot(self.bots, self.telegram, self.vault, self.clock, BASE_URL)

    def run(self, owner_id: int = OWNER, token: str = TOKEN):  # type: ignore[no-untyped-def]
        return self.register(RegisterBotCommand(owner_id=owner_id, token=BotToken(token)))


@pytest.fixture
def s() -> Setup:
    return Setup()


def test_happy_path_stores_an_active_bot_and_sets_the_webhook(s: Setup) -> None:
    bot = s.run()

    assert bot.status is BotStatus.ACTIVE
    stored = s.bots.get(bot.id)
    assert stored is not None
    assert stored.status is BotStatus.ACTIVE
    assert stored.owner_id == OWNER
    assert stored.telegram_bot_id == 123456789
    assert stored.username == "first_bot"
    assert s.bots.by_public_id(bot.public_id) is not None

    [(token, registration)] = s.telegram.webhooks
    assert token == BotToken(TOKEN)
    assert registration.url == f"https://hooks.example.test/webhook/{bot.public_id}"
    assert registration.drop_pending_updates is True
    assert set(registration.allowed_updates) == {"message", "callback_query"}
    assert stored.webhook_secret_sha256 == hashlib.sha256(registration.secret_token.encode()).digest()
    # The token is stored only sealed, and the seal is bound to this bot.
    assert TOKEN.encode() not in stored.sealed_token
    assert s.vault.decrypt(bot.id, SecretKind.BOT_TOKEN, DecryptPurpose.MANAGE, stored.sealed_token) == TOKEN
    assert TOKEN not in repr(stored)


def test_public_id_does_not_contain_the_token_or_bot_id(s: Setup) -> None:
    bot = s.run()
    assert "123456789" not in bot.public_id
    assert TOKEN.split(":")[1] not in s.telegram.webhooks[0][1].url


def test_token_rejected_by_get_me_stores_nothing(s: Setup) -> None:
    s.telegram.known.clear()
    with pytest.raises(TokenRejected):
        s.run()
    assert s.bots.by_telegram_bot_id(123456789) is None
    assert s.bots.list_by_owner(OWNER) == []
    assert s.telegram.webhooks == []


@pytest.mark.parametrize(
    "error",
    [TelegramRequestFailed(400, "Bad Request: bad webhook: HTTPS url must be provided"), TelegramUnavailable("down")],
)
def test_set_webhook_failure_leaves_only_a_failed_claim_that_a_retry_frees(s: Setup, error: Exception) -> None:
    s.telegram.set_webhook_error = error
    with pytest.raises(type(error)):
        s.run()
    claim = s.bots.by_telegram_bot_id(123456789)
    assert claim is not None and claim.status is BotStatus.FAILED
    assert claim.sealed_token == b"" and claim.webhook_secret_sha256 == b""
    s.telegram.set_webhook_error = None
    bot = s.run()
    assert bot.status is BotStatus.ACTIVE and bot.id != claim.id
    assert s.bots.get(claim.id) is None


def test_bot_of_another_owner_is_refused_and_left_untouched(s: Setup) -> None:
    first = s.run(owner_id=OWNER)
    before = s.bots.get(first.id)

    with pytest.raises(BotOwnedByAnotherAdmin):
        s.run(owner_id=OTHER_OWNER, token=TOKEN_2)

    assert s.bots.get(first.id) == before
    assert s.bots.list_by_owner(OTHER_OWNER) == []
    assert len(s.telegram.webhooks) == 1  # the other admin's attempt never touched the webhook


def test_same_owner_re_adding_refreshes_secret_and_token_in_place(s: Setup) -> None:
    first = s.run()
    first_stored = s.bots.get(first.id)
    assert first_stored is not None
    s.clock.advance(60)

    second = s.run(token=TOKEN_2)  # e.g. after /revoke in BotFather: same bot id, new token

    assert second.id == first.id
    assert second.public_id == first.public_id
    assert [b.id for b in s.bots.list_by_owner(OWNER)] == [first.id]
    stored = s.bots.get(first.id)
    assert stored is not None
    assert stored.status is BotStatus.ACTIVE
    assert stored.webhook_secret_sha256 != first_stored.webhook_secret_sha256
    assert stored.sealed_token != first_stored.sealed_token
    assert s.vault.decrypt(first.id, SecretKind.BOT_TOKEN, DecryptPurpose.MANAGE, stored.sealed_token) == TOKEN_2
    latest_secret = s.telegram.webhooks[-1][1].secret_token
    assert stored.webhook_secret_sha256 == hashlib.sha256(latest_secret.encode()).digest()


def test_failed_re_add_of_own_bot_keeps_the_stored_row(s: Setup) -> None:
    first = s.run()
    before = s.bots.get(first.id)
    s.telegram.set_webhook_error = TelegramUnavailable("down")

    with pytest.raises(TelegramUnavailable):
        s.run(token=TOKEN_2)

    assert s.bots.get(first.id) == before
