"""Vault settings. The only settings class in tgm that has key material fields.

Keys come from either
  * ``ENCRYPTION_KEY``: one key, key version 1. ``base64:<b64 of 32 bytes>`` or bare standard/urlsafe base64;
  * ``VAULT_KEYS``: JSON ``{"1": "base64:...", "2": "..."}`` for rotation, with ``VAULT_PRIMARY_KEY_VERSION``
    choosing the version that seals new secrets (default: the highest).
Error messages name the variable, never its value.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Literal

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.vault.crypto import KEY_BYTES, MAX_KEY_VERSION, Keyring

_PREFIX = "base64:"


class VaultConfigError(Exception):
    """The vault cannot start with this configuration; the message names the variable, not its value."""


class VaultSettings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
    )

    vault_listen: str = "127.0.0.1:50051"
    encryption_key: SecretStr | None = None
    vault_keys: SecretStr | None = None
    vault_primary_key_version: int | None = None
    # Until mTLS (issue 4): who may call without credentials. "any" is for a private container network only.
    vault_unauthenticated_peers: Literal["loopback", "any"] = "loopback"
    log_level: str = "INFO"


def load_settings() -> VaultSettings:
    """Reads the environment; turns pydantic's errors into a VaultConfigError naming only the variables."""
    try:
        return VaultSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        raise VaultConfigError(f"invalid vault settings: {problems}") from None


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


def _parse_vault_keys(document: str) -> dict[int, bytes]:
    try:
        parsed = json.loads(document)
    except ValueError:
        raise VaultConfigError('VAULT_KEYS is not valid JSON (expected {"1": "base64:...", ...})') from None
    if not isinstance(parsed, Mapping) or not parsed:
        raise VaultConfigError('VAULT_KEYS must be a non-empty JSON object {"<version>": "<key>"}')
    keys: dict[int, bytes] = {}
    for name, value in parsed.items():
        if not (isinstance(name, str) and name.isdecimal() and 1 <= int(name) <= MAX_KEY_VERSION):
            raise VaultConfigError(f"VAULT_KEYS has a key version that is not an integer in 1..{MAX_KEY_VERSION}")
        if not isinstance(value, str):
            raise VaultConfigError(f'VAULT_KEYS["{int(name)}"] must be a string')
        keys[int(name)] = decode_key(value, f'VAULT_KEYS["{int(name)}"]')
    return keys


def keyring_from_settings(settings: VaultSettings) -> Keyring:
    """Builds the keyring, or raises VaultConfigError with an actionable message."""
    single = settings.encryption_key.get_secret_value() if settings.encryption_key else ""
    many = settings.vault_keys.get_secret_value() if settings.vault_keys else ""
    if single and many:
        raise VaultConfigError("set ENCRYPTION_KEY or VAULT_KEYS, not both")
    if many:
        keys = _parse_vault_keys(many)
        primary = settings.vault_primary_key_version or max(keys)
        if primary not in keys:
            raise VaultConfigError(f"VAULT_PRIMARY_KEY_VERSION={primary} is not one of the versions in VAULT_KEYS")
    elif single:
        keys = {1: decode_key(single, "ENCRYPTION_KEY")}
        primary = settings.vault_primary_key_version or 1
        if primary != 1:
            raise VaultConfigError("VAULT_PRIMARY_KEY_VERSION must be 1 (or unset) with ENCRYPTION_KEY; use VAULT_KEYS")
    else:
        raise VaultConfigError("ENCRYPTION_KEY is required (or VAULT_KEYS); generate one with `vault genkey`")
    return Keyring(keys, primary)
