"""Outbox that calls Telegram at once, with the bot's token opened in the vault.

The simplest Outbox; flood control and 429 rescheduling wrap or replace it. An opened token is kept in
memory for a short while (TOKEN_CACHE_TTL_SECONDS), keyed by the sealed token it came from: a re-sealed
or replaced token is opened anew, and a token Telegram rejects is forgotten at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from tgm.domain.bots import BotToken
from tgm.domain.clock import SystemClock
from tgm.domain.errors import BotNotFound, TokenRejected
from tgm.domain.ports import BotDirectory, Clock, DecryptPurpose, SecretKind, SentMessage, TelegramApi, TokenVault

TOKEN_CACHE_TTL_SECONDS = 60.0
TOKEN_CACHE_MAX_ENTRIES = 1000

_T = TypeVar("_T")


class DirectOutbox:
    def __init__(
        self,
        bots: BotDirectory,
        vault: TokenVault,
        telegram: TelegramApi,
        clock: Clock | None = None,
        *,
        token_ttl_seconds: float = TOKEN_CACHE_TTL_SECONDS,
        max_cached_tokens: int = TOKEN_CACHE_MAX_ENTRIES,
    ) -> None:
        self._bots = bots
        self._vault = vault
        self._telegram = telegram
        self._clock: Clock = clock or SystemClock()
        self._token_ttl = token_ttl_seconds
        self._max_cached = max(1, max_cached_tokens)
        # (bot_id, sealed_token) -> (opened token, monotonic expiry); oldest first. Shared by worker threads.
        self._tokens: OrderedDict[tuple[str, bytes], tuple[BotToken, float]] = OrderedDict()
        self._tokens_lock = threading.Lock()

    def token(self, bot_id: str) -> BotToken:
        """Opens the bot's token (a vault call): done before the send slot is taken, see DrainOutbox."""
        return self._token(bot_id)

    def _token(self, bot_id: str) -> BotToken:
        bot = self._bots.get_bot(bot_id)
        if bot is None:
            raise BotNotFound(f"bot {bot_id} is unknown")
        key = (bot.id, bytes(bot.sealed_token))
        now = self._clock.monotonic()
        with self._tokens_lock:
            cached = self._tokens.get(key)
            if cached is not None:
                if cached[1] > now:
                    return cached[0]
                del self._tokens[key]
        # The vault call runs outside the lock: two threads may both open a token; both results are equal.
        token = BotToken(self._vault.decrypt(bot.id, SecretKind.BOT_TOKEN, DecryptPurpose.SEND, bot.sealed_token))
        with self._tokens_lock:
            self._tokens.pop(key, None)
            self._tokens[key] = (token, now + self._token_ttl)
            while len(self._tokens) > self._max_cached:
                self._tokens.popitem(last=False)  # the oldest
        return token

    def forget_token(self, bot_id: str) -> None:
        """Drops every cached token of the bot (Telegram rejected it: revoked or replaced)."""
        with self._tokens_lock:
            for key in [key for key in self._tokens if key[0] == bot_id]:
                del self._tokens[key]

    def _call(self, bot_id: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except TokenRejected:
            self.forget_token(bot_id)
            raise

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
    ) -> SentMessage:
        opened = token or self._token(bot_id)
        return self._call(
            bot_id,
            lambda: self._telegram.send_message(
                opened,
                chat_id,
                text,
                parse_mode=parse_mode,
                reply_markup=reply_markup,
                disable_web_page_preview=disable_web_page_preview,
            ),
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
        opened = token or self._token(bot_id)
        self._call(
            bot_id,
            lambda: self._telegram.edit_message_text(
                opened, chat_id, message_id, text, parse_mode=parse_mode, reply_markup=reply_markup
            ),
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
        opened = token or self._token(bot_id)
        self._call(bot_id, lambda: self._telegram.delete_message(opened, chat_id, message_id))

    def send_document(
        self,
        bot_id: str,
        chat_id: int,
        filename: str,
        content: bytes,
        *,
        mime_type: str,
        caption: str = "",
        token: BotToken | None = None,
    ) -> None:
        opened = token or self._token(bot_id)
        self._call(
            bot_id,
            lambda: self._telegram.send_document(
                opened, chat_id, filename, content, mime_type=mime_type, caption=caption
            ),
        )

    def answer_callback_query(
        self, bot_id: str, callback_query_id: str, text: str | None = None, token: BotToken | None = None
    ) -> None:
        opened = token or self._token(bot_id)
        self._call(bot_id, lambda: self._telegram.answer_callback_query(opened, callback_query_id, text))

    def copy_message(
        self,
        bot_id: str,
        chat_id: int,
        from_chat_id: int,
        message_id: int,
        *,
        reply_markup: dict[str, Any] | None = None,
        token: BotToken | None = None,
    ) -> SentMessage:
        opened = token or self._token(bot_id)
        return self._call(
            bot_id,
            lambda: self._telegram.copy_message(opened, chat_id, from_chat_id, message_id, reply_markup=reply_markup),
        )
