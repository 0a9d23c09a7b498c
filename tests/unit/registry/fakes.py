"""Small fakes of the ports the registry uses, for unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from tgm.domain.bots import BotToken, TelegramBotInfo
from tgm.domain.errors import TokenRejected
from tgm.domain.outbound import SendMessage
from tgm.domain.ports import SentMessage, WebhookRegistration

# Shaped like real tokens (the strict redaction pattern matches them), never real.
TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmnop"
TOKEN_2 = "123456789:AAOtherFakeTokenForTests_qrstuvwxyz0123"
OTHER_BOT_TOKEN = "987654321:BBAnotherFakeBotTokenForTests_zyxwvut"


@dataclass
class FakeTelegram:
    """Records calls; `known` maps telegram bot ids to usernames (others: TokenRejected)."""

    known: dict[int, str] = field(default_factory=lambda: {123456789: "first_bot", 987654321: "second_bot"})
    set_webhook_error: Exception | None = None
    get_me_error: Exception | None = None
    get_me_calls: list[BotToken] = field(default_factory=list)
    webhooks: list[tuple[BotToken, WebhookRegistration]] = field(default_factory=list)

    def get_me(self, token: BotToken) -> TelegramBotInfo:
        self.get_me_calls.append(token)
        if self.get_me_error is not None:
            raise self.get_me_error
        username = self.known.get(token.telegram_bot_id)
        if username is None:
            raise TokenRejected("Telegram answered 401 Unauthorized")
        return TelegramBotInfo(telegram_bot_id=token.telegram_bot_id, username=username, first_name=username)

    def set_webhook(self, token: BotToken, registration: WebhookRegistration) -> None:
        if self.set_webhook_error is not None:
            raise self.set_webhook_error
        self.webhooks.append((token, registration))

    def delete_webhook(self, token: BotToken, drop_pending_updates: bool = False) -> None:
        raise NotImplementedError

    def send_message(self, token: BotToken, message: SendMessage) -> SentMessage:
        raise NotImplementedError

    def delete_message(self, token: BotToken, chat_id: int, message_id: int) -> None:
        raise NotImplementedError

    def answer_callback_query(self, token: BotToken, callback_query_id: str, text: str | None = None) -> None:
        raise NotImplementedError
