import pickle
from datetime import UTC, datetime

import pytest

from tgm.domain.bots import (
    Bot,
    BotSettings,
    BotStatus,
    BotToken,
    WebhookSecret,
    new_public_id,
    webhook_secret_matches,
)
from tgm.domain.errors import IllegalTransition, InvalidToken

TOKEN = "1234567890:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-zZ"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_token_is_never_printable() -> None:
    token = BotToken(TOKEN)
    secret_part = TOKEN.split(":")[1]
    for shown in (str(token), repr(token), f"{token}", f"{token!r}", str([token]), repr({"t": token})):
        assert secret_part not in shown
    assert token.reveal() == TOKEN
    assert token.telegram_bot_id == 1234567890


def test_token_cannot_be_pickled_into_a_queue() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(BotToken(TOKEN))


@pytest.mark.parametrize(
    "text",
    ["", "abc", "123", ":abc", "123:", "12:ab cd", "12:ab/cd", "x12:abc", "1:" + "a" * 80, "123:abc\n456:def"],
)
def test_token_shape_is_checked(text: str) -> None:
    with pytest.raises(InvalidToken) as raised:
        BotToken(text)
    if len(text) > 4:
        assert text not in str(raised.value)


def test_token_accepts_surrounding_whitespace() -> None:
    assert BotToken(f"  {TOKEN}\n").reveal() == TOKEN


def test_webhook_secret_check_is_by_hash() -> None:
    secret = WebhookSecret.generate()
    assert webhook_secret_matches(secret.value, secret.sha256)
    assert not webhook_secret_matches(secret.value + "x", secret.sha256)
    assert not webhook_secret_matches(None, secret.sha256)
    assert not webhook_secret_matches(WebhookSecret.generate().value, secret.sha256)
    assert secret.value not in repr(secret)


def test_public_ids_are_long_random_and_url_safe() -> None:
    ids = {new_public_id() for _ in range(200)}
    assert len(ids) == 200
    for public_id in ids:
        assert len(public_id) >= 22  # 128+ bits in URL-safe base64
        assert all(c.isalnum() or c in "-_" for c in public_id)


def make_bot(status: BotStatus) -> Bot:
    return Bot(
        id="b1",
        public_id="p1",
        owner_id=1,
        telegram_bot_id=2,
        username="x_bot",
        status=status,
        sealed_token=b"sealed",
        webhook_secret_sha256=b"h" * 32,
        settings=BotSettings(),
        created_at=NOW,
        updated_at=NOW,
    )


LEGAL = {
    (BotStatus.PENDING, "activate"): BotStatus.ACTIVE,
    (BotStatus.PENDING, "fail"): BotStatus.FAILED,
    (BotStatus.ACTIVE, "disable"): BotStatus.DISABLED,
    (BotStatus.ACTIVE, "delete"): BotStatus.DELETED,
    (BotStatus.DISABLED, "enable"): BotStatus.ACTIVE,
    (BotStatus.DISABLED, "delete"): BotStatus.DELETED,
}
MOVES = ("activate", "fail", "disable", "enable", "delete")


@pytest.mark.parametrize("status", list(BotStatus))
@pytest.mark.parametrize("move", MOVES)
def test_every_transition_is_legal_or_refused(status: BotStatus, move: str) -> None:
    bot = make_bot(status)
    expected = LEGAL.get((status, move))
    if expected is None:
        with pytest.raises(IllegalTransition):
            getattr(bot, move)(NOW)
        assert bot.status is status
    else:
        getattr(bot, move)(NOW)
        assert bot.status is expected
