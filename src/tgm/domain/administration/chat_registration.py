"""Registering a bot from the manager bot's chat: a token pasted there (sealed by the gateway), or a bot created
through it (Telegram's managed bots). Tokens are opened here only (vault Decrypt, purpose manage)."""

from __future__ import annotations

from tgm.domain.administration.ports import ManagerLookup, Registration
from tgm.domain.administration.register_bot import RegisterBot, RegisterBotCommand
from tgm.domain.bot_roles import BotAdminStore
from tgm.domain.bots import BotToken
from tgm.domain.errors import BotNotFound, BotOwnedByAnotherAdmin, InvalidToken, SecretRejected
from tgm.domain.ports import DecryptPurpose, SecretKind, TelegramApi, TokenVault
from tgm.domain.sealing import inbound_text_ref


class ChatRegistration:
    def __init__(
        self,
        manager: ManagerLookup,
        telegram: TelegramApi,
        vault: TokenVault,
        register_bot: RegisterBot,
        admins: BotAdminStore | None,
    ) -> None:
        self._manager = manager
        self._telegram = telegram
        self._vault = vault
        self._register = register_bot
        self._admins = admins

    def register_sealed(self, owner_id: int, ciphertext: bytes, sealed_by_bot_id: str, chat_id: int) -> Registration:
        """A token the gateway sealed out of a message to the manager bot.

        The ciphertext is bound (vault bot_ref) to the manager bot, the sender and the chat it came from: it
        opens only for the owner and chat the dispatcher claims, so a blob replayed under another owner fails.
        """
        manager = self._manager.manager_bot()
        if manager is None or manager.id != sealed_by_bot_id:
            raise InvalidToken("sealed text must come from the manager bot")
        try:
            plaintext = self._vault.decrypt(
                inbound_text_ref(manager.id, owner_id, chat_id),
                SecretKind.INBOUND_TEXT,
                DecryptPurpose.MANAGE,
                ciphertext,
            )
        except SecretRejected:
            raise InvalidToken("the sealed text was not sent by this admin in this chat") from None
        token = BotToken(plaintext)  # InvalidToken for anything else
        if token.telegram_bot_id == manager.telegram_bot_id:
            raise BotOwnedByAnotherAdmin("this bot is registered by another admin")
        bot, refreshed = self._register.register(RegisterBotCommand(owner_id=owner_id, token=token))
        return Registration(bot, refreshed)

    def register_managed(self, owner_id: int, managed_bot_user_id: int) -> Registration:
        """A bot the owner created through the manager bot, or one whose token or owner changed (the
        `managed_bot` update): its token comes from getManagedBotToken. Telegram is authoritative for managed
        bots, so a new owner takes the bot over from the previous one."""
        manager = self._manager.manager_bot()
        if manager is None:
            raise BotNotFound("no manager bot is registered")
        manager_token = BotToken(
            self._vault.decrypt(manager.id, SecretKind.BOT_TOKEN, DecryptPurpose.MANAGE, manager.sealed_token)
        )
        # Succeeds only for a bot this manager bot manages: that is what makes Telegram's word authoritative.
        token = self._telegram.get_managed_bot_token(manager_token, managed_bot_user_id)
        if token.telegram_bot_id != managed_bot_user_id:
            raise InvalidToken("Telegram returned the token of another bot")
        bot, refreshed = self._register.register(
            RegisterBotCommand(owner_id=owner_id, token=token, owner_is_authoritative=True)
        )
        if not refreshed and self._admins is not None:
            # New here, or taken over from another owner: the admins and invites of the previous owner go.
            self._admins.clear(bot.id)
        return Registration(bot, refreshed)
