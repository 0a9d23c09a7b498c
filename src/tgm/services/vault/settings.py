"""Vault settings: the only settings class in tgm with key material fields (README.md lists them).

Error messages name the variable, never its value.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from pydantic import SecretStr

from tgm.config.service import ServiceSettings, load_from_env
from tgm.services.vault.crypto import KEY_BYTES

_PREFIX = "base64:"


class VaultConfigError(Exception):
    """The vault cannot start with this configuration; the message names the variable, not its value."""


class VaultSettings(ServiceSettings):
    """Also LOG_LEVEL, METRICS_HOST and METRICS_PORT, and the strict reading (src/tgm/config/service.py)."""

    vault_listen: str = "127.0.0.1:50051"
    encryption_key: SecretStr | None = None
    vault_keyring_file: Path | None = None
    vault_rotation_days: int = 90
    # The hash-chained audit log (src/tgm/services/vault/audit.py); fsync after every line unless switched off.
    vault_audit_file: Path = Path(".run/vault-audit.log")
    vault_audit_fsync: bool = True
    # The audit log's anchor (last seq + hash, HMAC-tagged), kept apart from the log and checked at every start.
    # Default: beside the keyring (the vault's private folder), else `<audit file>.anchor`.
    vault_audit_anchor_file: Path | None = None

    def keyring_file(self) -> Path:
        """VAULT_KEYRING_FILE: the only place the vault's keys live (there is no serving from ENCRYPTION_KEY alone)."""
        if self.vault_keyring_file is None:
            raise VaultConfigError(
                "VAULT_KEYRING_FILE is not set: it names the vault's keyring, which `python -m tgm.services.vault "
                "init` creates once (from ENCRYPTION_KEY, else a fresh key) and every other vault command reads"
            )
        return self.vault_keyring_file


def load_settings() -> VaultSettings:
    """Reads the environment; a bad value is a VaultConfigError naming only the variables."""
    return load_from_env(VaultSettings, VaultConfigError, "vault")


def encode_key(raw: bytes) -> str:
    """The form `decode_key` reads (ENCRYPTION_KEY, the keyring file)."""
    return _PREFIX + base64.b64encode(raw).decode("ascii")


def decode_key(value: str, variable: str) -> bytes:
    """Decodes one key; raises VaultConfigError naming `variable` (never echoing `value`)."""
    text = value.strip()
    if text.startswith(_PREFIX):
        text = text[len(_PREFIX) :]
    text += "=" * (-len(text) % 4)
    raw: bytes | None = None
    for altchars in (b"+/", b"-_"):  # standard, then urlsafe
        try:
            raw = base64.b64decode(text, altchars=altchars, validate=True)
            break
        except (binascii.Error, ValueError):
            continue
    if raw is None:
        raise VaultConfigError(f"{variable} is not valid base64 (expected 'base64:' + base64 of {KEY_BYTES} bytes)")
    if len(raw) != KEY_BYTES:
        raise VaultConfigError(f"{variable} must decode to exactly {KEY_BYTES} bytes (AES-256), got {len(raw)}")
    if len(set(raw)) == 1:
        raise VaultConfigError(f"{variable} is a degenerate key (one repeated byte); generate a random one")
    return raw


def env_key(settings: VaultSettings) -> bytes | None:
    """ENCRYPTION_KEY decoded (key version 1 of the keyring `init` makes from it); None when it is not set."""
    value = settings.encryption_key.get_secret_value() if settings.encryption_key else ""
    return decode_key(value, "ENCRYPTION_KEY") if value else None
