"""Token-shaped text in manager-bot updates: sealed by the gateway, replaced by placeholders.

The gateway walks the whole update, replaces every token-shaped substring (redaction.TOKEN_SHAPED) with
``[sealed:N]`` and hands the text to the vault (Encrypt only); the envelope carries the ciphertexts, so the
queue never holds a token. Only the registry opens them (Decrypt, purpose manage).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from libs.domain.redaction import TOKEN_SHAPED

MAX_SEALED_PER_UPDATE = 8
PLACEHOLDER = re.compile(r"\[sealed:(\d{1,2})\]")


class TooManySecrets(ValueError):
    """An update holds more token-shaped strings than any real use needs."""


def placeholder(index: int) -> str:
    return f"[sealed:{index}]"


def seal_update(update: dict[str, Any], seal: Callable[[str], bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """A copy of `update` with token-shaped text replaced, and the sealed secrets in placeholder order."""
    sealed: list[bytes] = []

    def replace(match: re.Match[str]) -> str:
        if len(sealed) >= MAX_SEALED_PER_UPDATE:
            raise TooManySecrets("too many token-shaped strings in one update")
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
