"""A TokenVault fake for tests. Holds plaintext in memory: never in production (so it lives under tests/).

Still binds each ciphertext to its bot_ref and kind, and enforces the vault's request limits, so tests
that pass against it pass against the real vault (tests/unit/vault/test_token_vault_contract.py).
"""

from __future__ import annotations

import secrets
import threading

from tgm.domain.errors import SecretRejected, VaultUnavailable
from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.vault_client.wire import MAX_PLAINTEXT_BYTES, bot_ref_ok

_PREFIX = b"memvault1:"


class InMemoryTokenVault:
    def __init__(self) -> None:
        self._sealed: dict[bytes, tuple[str, SecretKind, str]] = {}
        self._lock = threading.Lock()

    def encrypt(self, bot_ref: str, kind: SecretKind, plaintext: str) -> bytes:
        _check_bot_ref(bot_ref)
        if len(plaintext.encode("utf-8")) > MAX_PLAINTEXT_BYTES:
            raise VaultUnavailable("vault Encrypt failed: INVALID_ARGUMENT")
        handle = _PREFIX + secrets.token_bytes(24)
        with self._lock:
            self._sealed[handle] = (bot_ref, SecretKind(kind), plaintext)
        return handle

    def decrypt(self, bot_ref: str, kind: SecretKind, purpose: DecryptPurpose, ciphertext: bytes) -> str:
        _check_bot_ref(bot_ref)
        DecryptPurpose(purpose)
        with self._lock:
            entry = self._sealed.get(bytes(ciphertext))
        if entry is None or entry[0] != bot_ref or entry[1] != kind:
            raise SecretRejected("vault Decrypt failed: INVALID_ARGUMENT")
        return entry[2]

    def __repr__(self) -> str:
        return f"InMemoryTokenVault(<{len(self._sealed)} sealed>)"


def _check_bot_ref(bot_ref: str) -> None:
    if not bot_ref_ok(bot_ref):
        raise VaultUnavailable("vault call failed: INVALID_ARGUMENT")
