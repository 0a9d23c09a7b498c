"""RegisterBot: getMe → claim the bot (a PENDING row) → seal in the vault → setWebhook → ACTIVE.

Races are settled by the database, not by reads: the unique telegram_bot_id decides which of two concurrent
registrations claims a new bot, and every later write is a compare-and-set on the row's version, so a stale
write never lands (nor resurrects a deleted bot). What Telegram was told is undone when the database write
after it fails (deleteWebhook, and the claim is marked FAILED so that a retry works).

A DELETED or FAILED row is free: anyone may register that bot again; it gets a new id and public id, no
settings, no stats and the new owner. So is a PENDING claim older than CLAIM_TIMEOUT (a crashed registration).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from tgm.domain.bots import (
    Bot,
    BotSettings,
    BotStatus,
    BotToken,
    TelegramBotInfo,
    WebhookSecret,
    new_bot_id,
    new_public_id,
)
from tgm.domain.errors import BotOwnedByAnotherAdmin, ConcurrentUpdate, DomainError
from tgm.domain.ports import BotRepository, Clock, SecretKind, TelegramApi, TokenVault, WebhookRegistration

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "callback_query")
# The manager bot also hears about bots its users create through it (Bot API 9.6).
MANAGER_ALLOWED_UPDATES = ("message", "callback_query", "managed_bot")
CLAIM_TIMEOUT = timedelta(minutes=2)
MAX_ATTEMPTS = 3


class RegistrationInProgress(ConcurrentUpdate):
    """The bot is being registered right now (a fresh PENDING claim): try again in a moment."""


@dataclass(frozen=True)
class RegisterBotCommand:
    owner_id: int
    token: BotToken
    is_manager: bool = False
    # Telegram itself says who owns the bot (a managed bot's owner change): take it over from its current owner.
    owner_is_authoritative: bool = False


def allowed_updates(bot: Bot) -> tuple[str, ...]:
    return MANAGER_ALLOWED_UPDATES if bot.is_manager else ALLOWED_UPDATES


def is_free(bot: Bot, now: datetime) -> bool:
    """Whether anyone may register this bot again."""
    if bot.status in (BotStatus.DELETED, BotStatus.FAILED):
        return True
    return bot.status is BotStatus.PENDING and now - bot.updated_at > CLAIM_TIMEOUT


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
        for _attempt in range(MAX_ATTEMPTS):
            existing = self._bots.by_telegram_bot_id(info.telegram_bot_id)
            now = self._clock.now()
            try:
                if existing is None or is_free(existing, now):
                    return self._register_new(command, info, existing, now), False
                if existing.owner_id != command.owner_id and not (
                    command.owner_is_authoritative and existing.status in (BotStatus.ACTIVE, BotStatus.DISABLED)
                ):
                    raise BotOwnedByAnotherAdmin("this bot is registered by another admin")
                if existing.status is BotStatus.PENDING:
                    raise RegistrationInProgress(f"bot {existing.id} is being registered right now")
                refreshed = existing.owner_id == command.owner_id
                return self._refresh(command, info, existing), refreshed
            except RegistrationInProgress:
                raise
            except ConcurrentUpdate:
                continue  # someone else wrote first: read again and decide again
        raise ConcurrentUpdate("the bot kept changing during registration; try again")

    # -- a bot nobody holds: claim, then tell Telegram, then activate ------------------------------------

    def _register_new(self, command: RegisterBotCommand, info: TelegramBotInfo, free: Bot | None, now: datetime) -> Bot:
        bot = Bot(
            id=new_bot_id(),
            public_id=new_public_id(),
            owner_id=command.owner_id,
            telegram_bot_id=info.telegram_bot_id,
            username=info.username,
            status=BotStatus.PENDING,
            sealed_token=b"",
            webhook_secret_sha256=b"",
            settings=BotSettings(),
            created_at=now,
            updated_at=now,
            is_manager=command.is_manager,
        )
        # The claim: the unique telegram_bot_id (or the version of the free row) decides who wins.
        if free is None:
            self._bots.add(bot)  # DuplicateBot when another registration claimed it first
        else:
            self._bots.replace(free, bot)  # ConcurrentUpdate when the free row changed meanwhile
        secret = WebhookSecret.generate()
        try:
            bot.sealed_token = self._vault.encrypt(bot.id, SecretKind.BOT_TOKEN, command.token.reveal())
            self._set_webhook(command.token, bot, secret, drop_pending_updates=True)
        except Exception:
            self._fail(bot)
            raise
        bot.webhook_secret_sha256 = secret.sha256
        bot.activate(self._clock.now())
        try:
            self._bots.save(bot)
        except Exception:
            # Telegram now delivers to a bot we could not record: take the webhook back, free the claim.
            self._undo_webhook(command.token, bot)
            self._fail(bot)
            raise
        return bot

    def _fail(self, bot: Bot) -> None:
        """Marks a claim FAILED (no token, no secret) so that a retry may register the bot again."""
        try:
            current = self._bots.get(bot.id)
            if current is None or current.status is not BotStatus.PENDING:
                return
            current.fail(self._clock.now())
            current.sealed_token = b""
            current.webhook_secret_sha256 = b""
            self._bots.save(current)
        except Exception as error:  # best effort: a stale PENDING claim is free after CLAIM_TIMEOUT anyway
            logger.warning(
                "could not mark a failed registration", extra={"bot_id": bot.id, "error": type(error).__name__}
            )

    # -- one of the owner's own bots (or a managed bot Telegram says is now theirs) -----------------------

    def _refresh(self, command: RegisterBotCommand, info: TelegramBotInfo, bot: Bot) -> Bot:
        secret = WebhookSecret.generate()
        sealed = self._vault.encrypt(bot.id, SecretKind.BOT_TOKEN, command.token.reveal())
        bot.username = info.username
        bot.is_manager = command.is_manager
        bot.owner_id = command.owner_id
        self._set_webhook(command.token, bot, secret, drop_pending_updates=True)
        bot.sealed_token = sealed
        bot.webhook_secret_sha256 = secret.sha256
        bot.updated_at = self._clock.now()
        try:
            self._bots.save(bot)
        except ConcurrentUpdate:
            self.compensate_lost_write(command.token, bot.id)
            raise
        return bot

    def compensate_lost_write(self, token: BotToken, bot_id: str) -> None:
        """After setWebhook, the compare-and-set lost: if the bot no longer serves (deleted meanwhile), the
        webhook we just set must go; if it still does, the caller retries and sets it again, consistently."""
        current = self._bots.get(bot_id)
        if current is None or current.status not in (BotStatus.ACTIVE, BotStatus.DISABLED):
            self._undo_webhook(token, current)

    def _undo_webhook(self, token: BotToken, bot: Bot | None) -> None:
        try:
            self._telegram.delete_webhook(token, drop_pending_updates=False)
        except DomainError as error:
            logger.warning(
                "could not take back a webhook",
                extra={"bot_id": bot.id if bot is not None else None, "error": type(error).__name__},
            )

    def _set_webhook(self, token: BotToken, bot: Bot, secret: WebhookSecret, *, drop_pending_updates: bool) -> None:
        self._telegram.set_webhook(
            token,
            WebhookRegistration(
                url=self.webhook_url(bot.public_id),
                secret_token=secret.value,
                allowed_updates=allowed_updates(bot),
                drop_pending_updates=drop_pending_updates,
            ),
        )
