"""Token-shaped text in manager-bot updates: sealed by the gateway, replaced by placeholders.

The gateway walks the whole update, replaces every token-shaped substring (redaction.TOKEN_SHAPED) with
``[sealed:N]`` and hands the text to the vault (Encrypt only); the envelope carries the ciphertexts, so the
queue never holds a token. Only the registry opens them (Decrypt, purpose manage).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from tgm.domain.redaction import REDACTED, TOKEN_SHAPED

MAX_SEALED_PER_UPDATE = 8
MAX_REF_CHARS = 64  # the vault's bot_ref limit
PLACEHOLDER = re.compile(r"\[sealed:(\d{1,2})\]")


def placeholder(index: int) -> str:
    return f"[sealed:{index}]"


def seal_update(update: dict[str, Any], seal: Callable[[str], bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """A copy of `update` with token-shaped text replaced, and the sealed secrets in placeholder order."""
    sealed: list[bytes] = []

    def replace(match: re.Match[str]) -> str:
        if len(sealed) >= MAX_SEALED_PER_UPDATE:
            # Beyond what any real use needs: masked, not sealed (the vault calls per update stay bounded), and the
            # update still reaches the manager bot, which deletes the message because it held tokens.
            return REDACTED
        sealed.append(seal(match.group(0)))
        return placeholder(len(sealed) - 1)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return TOKEN_SHAPED.sub(replace, value) if TOKEN_SHAPED.search(value) else value
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(update), sealed


def placeholders_in(text: str) -> list[int]:
    return [int(match.group(1)) for match in PLACEHOLDER.finditer(text)]


def inbound_text_ref(manager_bot_id: str, sender_id: int, chat_id: int) -> str:
    """The vault bot_ref a token-shaped text from the manager bot's chat is sealed under: the manager bot, the
    Telegram sender (from.id) and the chat. Only the same (sender, chat) opens it again, so a ciphertext replayed
    under another owner does not open. Readable when it fits the vault's 64 characters, else hashed."""
    ref = f"{manager_bot_id}:{sender_id}:{chat_id}"
    if len(ref) <= MAX_REF_CHARS:
        return ref
    digest = hashlib.sha256(f"{sender_id}:{chat_id}".encode("ascii")).hexdigest()[:24]
    return f"{manager_bot_id}:h{digest}"[:MAX_REF_CHARS]


def _int_at(body: Any, *path: str) -> int:
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return body if isinstance(body, int) and not isinstance(body, bool) else 0


def sealing_context(update: dict[str, Any]) -> tuple[int, int]:
    """(sender id, chat id) of an update, 0 where there is none: what a sealed text is bound to."""
    for kind in ("message", "edited_message"):
        body = update.get(kind)
        if isinstance(body, dict):
            return _int_at(body, "from", "id"), _int_at(body, "chat", "id")
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        return _int_at(callback, "from", "id"), _int_at(callback, "message", "chat", "id")
    managed = update.get("managed_bot")
    if isinstance(managed, dict):
        user_id = _int_at(managed, "user", "id")
        return user_id, user_id
    return 0, 0
