"""Seals token-shaped text in the manager bot's updates before they are enqueued (vault Encrypt only)."""

from __future__ import annotations

import base64
from typing import Any

from tgm.domain.ports import SecretKind, TokenVault
from tgm.domain.sealing import inbound_text_ref, seal_update, sealing_context


def seal_manager_update(
    vault: TokenVault, manager_bot_id: str, update: dict[str, Any]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The update with every token-shaped substring replaced by [sealed:N], and the ciphertexts (base64).

    Each ciphertext is bound to the manager bot, the sender and the chat (`inbound_text_ref`): the registry
    opens it only for the owner and chat the dispatcher names. Raises VaultUnavailable (the gateway then answers
    503 so Telegram redelivers). Beyond MAX_SEALED_PER_UPDATE tokens are masked, not sealed.
    """
    bot_ref = inbound_text_ref(manager_bot_id, *sealing_context(update))
    sealed_update, sealed = seal_update(update, lambda secret: vault.encrypt(bot_ref, SecretKind.INBOUND_TEXT, secret))
    return sealed_update, tuple(base64.b64encode(item).decode("ascii") for item in sealed)
