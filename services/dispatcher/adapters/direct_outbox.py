"""Outbox that calls Telegram at once: opens the bot's token in the vault for each call.

The simplest Outbox; flood control and 429 rescheduling wrap or replace it.
"""

from __future__ import annotations

from typing import Any

from libs.domain.bots import BotToken
from libs.domain.errors import BotNotFound
from libs.domain.ports import BotDirectory, DecryptPurpose, SecretKind, TelegramApi, TokenVault


class DirectOutbox:
    def __init__(self, bots: BotDirectory, vault: TokenVault, telegram: TelegramApi) -> None:
        self._bots = bots
        self._vault = vault
        self._telegram = telegram

    def token(self, bot_id: str) -> BotToken:
        """Opens the bot's token (a vault call): done before the send slot is taken, see DrainOutbox."""
        return self._token(bot_id)

    def _token(self, bot_id: str) -> BotToken:
        bot = self._bots.get_bot(bot_id)
        if bot is None:
            raise BotNotFound(f"bot {bot_id} is unknown")
        return BotToken(self._vault.decrypt(bot.id, SecretKind.BOT_TOKEN, DecryptPurpose.SEND, bot.sealed_token))

    def send_message(
        self,
        bot_id: str,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        disable_web_page_preview: bool = False,
        token: BotToken | None = None,
    ) -> None:
        self._telegram.send_message(
            token or self._token(bot_id),
            chat_id,
            text,
            parse_mode=parse_mode,
            reply_markup=reply_markup,
            disable_web_page_preview=disable_web_page_preview,
        )

    def edit_message_text(
        self,
        bot_id: str,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
        token: BotToken | None = None,
    ) -> None:
        self._telegram.edit_message_text(
            token or self._token(bot_id), chat_id, message_id, text, parse_mode=parse_mode, reply_markup=reply_markup
        )

    def delete_message(
        self,
        bot_id: str,
        chat_id: int,
        message_id: int,
        token: BotToken | None = None,
        *,
        if_refused_text: str | None = None,  # unused: a refusal raises TelegramRequestFailed here
    ) -> None:
        self._telegram.delete_message(token or self._token(bot_id), chat_id, message_id)

    def answer_callback_query(
        self, bot_id: str, callback_query_id: str, text: str | None = None, token: BotToken | None = None
    ) -> None:
        self._telegram.answer_callback_query(token or self._token(bot_id), callback_query_id, text)
