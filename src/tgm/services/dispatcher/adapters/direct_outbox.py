"""DirectOutbox: makes an outbound call (src/tgm/domain/outbound.py) at once, with the bot's token opened in the vault.

What sends for the queued Outbox (DirectSend, DrainOutbox: flood control, 429s, once only) and the broadcast; it
decides nothing about when. An opened token is kept in
memory for a short while (TOKEN_CACHE_TTL_SECONDS), keyed by the sealed token it came from: a re-sealed
or replaced token is opened anew, and a token Telegram rejects is forgotten at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from tgm.domain.bots import BotToken
from tgm.domain.clock import SystemClock
from tgm.domain.errors import BotNotFound, TokenRejected
from tgm.domain.outbound import (
    AnswerCallbackQuery,
    CopyMessage,
    DeleteMessage,
    EditMessageText,
    OutboundCall,
    SendDocument,
    SendMessage,
)
from tgm.domain.ports import BotDirectory, Clock, DecryptPurpose, SecretKind, SentMessage, TelegramApi, TokenVault

TOKEN_CACHE_TTL_SECONDS = 60.0
TOKEN_CACHE_MAX_ENTRIES = 1000


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

    def send(self, bot_id: str, call: OutboundCall, token: BotToken | None = None) -> SentMessage | None:
        """Makes the call now (`token`: already opened, else opened here); the message a send or a copy made. A
        DeleteMessage Telegram refuses raises TelegramRequestFailed (its `if_refused_text` is the queue's business)."""
        opened = token or self._token(bot_id)
        try:
            match call:
                case SendMessage():
                    return self._telegram.send_message(opened, call)
                case CopyMessage():
                    return self._telegram.copy_message(opened, call)
                case EditMessageText():
                    self._telegram.edit_message_text(opened, call)
                case SendDocument():
                    self._telegram.send_document(opened, call)
                case DeleteMessage():
                    self._telegram.delete_message(opened, call.chat_id, call.message_id)
                case AnswerCallbackQuery():
                    self._telegram.answer_callback_query(opened, call.callback_query_id, call.text)
        except TokenRejected:
            self.forget_token(bot_id)
            raise
        return None
