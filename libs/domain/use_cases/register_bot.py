"""RegisterBot: getMe → seal in the vault → store → setWebhook with a fresh secret."""

from __future__ import annotations

from dataclasses import dataclass

from libs.domain.bots import (
    Bot,
    BotSettings,
    BotStatus,
    BotToken,
    WebhookSecret,
    new_bot_id,
    new_public_id,
)
from libs.domain.errors import BotOwnedByAnotherAdmin
from libs.domain.ports import BotRepository, Clock, SecretKind, TelegramApi, TokenVault, WebhookRegistration

ALLOWED_UPDATES = ("message", "callback_query")
# The manager bot also hears about bots its users create through it (Bot API 9.6).
MANAGER_ALLOWED_UPDATES = ("message", "callback_query", "managed_bot")


@dataclass(frozen=True)
class RegisterBotCommand:
    owner_id: int
    token: BotToken
    is_manager: bool = False


class RegisterBot:
    def __init__(
        self,
        bots: BotRepository,
        telegram: TelegramApi,
        vault: TokenVault,
        clock: Clock,
        webhook_base_url: str,
    ) -> None:
        self._bots = bots
        self._telegram = telegram
        self._vault = vault
        self._clock = clock
        self._webhook_base_url = webhook_base_url.rstrip("/")

    def webhook_url(self, public_id: str) -> str:
        return f"{self._webhook_base_url}/webhook/{public_id}"

    def __call__(self, command: RegisterBotCommand) -> Bot:
        return self.register(command)[0]

    def register(self, command: RegisterBotCommand) -> tuple[Bot, bool]:
        """The bot, and whether it was one of the owner's own bots re-added (token and secret refreshed)."""
        info = self._telegram.get_me(command.token)  # the real check of the token
        now = self._clock.now()
        existing = self._bots.by_telegram_bot_id(info.telegram_bot_id)
        if existing is not None and existing.owner_id != command.owner_id:
            raise BotOwnedByAnotherAdmin("this bot is registered by another admin")
        secret = WebhookSecret.generate()
        reusable = existing is not None and existing.status in (BotStatus.ACTIVE, BotStatus.DISABLED)
        if existing is not None and reusable:
            # Re-adding one's own bot refreshes its token and webhook secret in place.
            bot = existing
            bot.username = info.username
        else:
            bot = Bot(
                id=existing.id if existing is not None else new_bot_id(),
                public_id=new_public_id(),
                owner_id=command.owner_id,
                telegram_bot_id=info.telegram_bot_id,
                username=info.username,
                status=BotStatus.PENDING,
                sealed_token=b"",
                webhook_secret_sha256=b"",
                settings=existing.settings if existing is not None else BotSettings(),
                created_at=now,
                updated_at=now,
            )
        bot.is_manager = command.is_manager
        bot.sealed_token = self._vault.encrypt(bot.id, SecretKind.BOT_TOKEN, command.token.reveal())
        # Nothing is stored until Telegram accepted the webhook: a failure leaves no half-registered row.
        self._telegram.set_webhook(
            command.token,
            WebhookRegistration(
                url=self.webhook_url(bot.public_id),
                secret_token=secret.value,
                allowed_updates=MANAGER_ALLOWED_UPDATES if command.is_manager else ALLOWED_UPDATES,
                drop_pending_updates=True,
            ),
        )
        bot.webhook_secret_sha256 = secret.sha256
        if bot.status is BotStatus.PENDING:
            bot.activate(now)
        if existing is None:
            self._bots.add(bot)
        else:
            self._bots.save(bot)
        return bot, reusable
