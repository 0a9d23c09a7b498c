"""A bot's life as its owner and admins steer it: enable, disable, a new webhook secret, delete."""

from __future__ import annotations

import contextlib

from tgm.domain.administration.authorization import Authorization
from tgm.domain.administration.concurrency import retrying
from tgm.domain.administration.register_bot import RegisterBot, allowed_updates
from tgm.domain.bot_roles import BotAction
from tgm.domain.bots import Bot, BotStatus, BotToken, WebhookSecret
from tgm.domain.errors import ConcurrentUpdate, IllegalTransition, TokenRejected
from tgm.domain.ports import (
    BotRepository,
    Clock,
    DecryptPurpose,
    SecretKind,
    TelegramApi,
    TokenVault,
    WebhookRegistration,
)


class BotLifecycle:
    def __init__(
        self,
        bots: BotRepository,
        authorization: Authorization,
        telegram: TelegramApi,
        vault: TokenVault,
        clock: Clock,
        register_bot: RegisterBot,
    ) -> None:
        self._bots = bots
        self._authorization = authorization
        self._telegram = telegram
        self._vault = vault
        self._clock = clock
        self._register = register_bot

    def set_enabled(self, actor_id: int, bot_id: str, enabled: bool) -> Bot:
        def change() -> Bot:
            bot = self._authorization.bot_for(actor_id, bot_id, BotAction.SET_STATUS)
            now = self._clock.now()
            if enabled:
                bot.enable(now)
            else:
                bot.disable(now)
            self._bots.save(bot)
            return bot

        return retrying(change)

    def _token_of(self, bot: Bot) -> BotToken:
        return BotToken(self._vault.decrypt(bot.id, SecretKind.BOT_TOKEN, DecryptPurpose.MANAGE, bot.sealed_token))

    def rotate_secret(self, actor_id: int, bot_id: str) -> Bot:
        def change() -> Bot:
            bot = self._authorization.bot_for(actor_id, bot_id, BotAction.ROTATE_SECRET)
            if bot.status not in (BotStatus.ACTIVE, BotStatus.DISABLED):
                raise IllegalTransition(f"bot {bot.id}: cannot rotate the secret of a {bot.status.value} bot")
            token = self._token_of(bot)
            secret = WebhookSecret.generate()
            self._telegram.set_webhook(
                token,
                WebhookRegistration(
                    url=self._register.webhook_url(bot.public_id),
                    secret_token=secret.value,
                    allowed_updates=allowed_updates(bot),
                    drop_pending_updates=False,
                ),
            )
            bot.webhook_secret_sha256 = secret.sha256
            bot.updated_at = self._clock.now()
            try:
                self._bots.save(bot)
            except ConcurrentUpdate:
                # Deleted meanwhile: the webhook just set must go. Still serving: the retry sets it again.
                self._register.compensate_lost_write(token, bot.id)
                raise
            return bot

        return retrying(change)

    def delete(self, actor_id: int, bot_id: str) -> Bot:
        def change() -> Bot:
            bot = self._authorization.bot_for(actor_id, bot_id, BotAction.DELETE)
            now = self._clock.now()
            bot.delete(now)  # IllegalTransition before anything reaches Telegram (also: deleted by a racer)
            with contextlib.suppress(TokenRejected):  # revoked meanwhile: Telegram will not deliver to us anyway
                self._telegram.delete_webhook(self._token_of(bot), drop_pending_updates=True)
            bot.sealed_token = b""  # a deleted bot keeps no token, not even sealed
            bot.webhook_secret_sha256 = b""
            self._bots.save(bot)
            return bot

        return retrying(change)
