"""Sealing and opening secrets with AES-256-GCM, bound to their bot and kind (README.md, "Ciphertext"). Pure: no
I/O, no logging, no settings."""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tgm.domain.ports import SecretKind

FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = struct.Struct(">BI")
HEADER_BYTES = _HEADER.size + NONCE_BYTES
MAX_KEY_VERSION = 2**32 - 1
_AAD_DOMAIN = b"tgm.vault.v1/aad"


class VaultCryptoError(Exception):
    """Base of the errors raised here; messages never contain key material or plaintext."""


class KeyringError(VaultCryptoError):
    """The keyring cannot be built from the given keys."""


class UnknownKeyVersion(VaultCryptoError):
    """The ciphertext names a key version this vault does not hold (retired, or from another vault)."""

    def __init__(self, key_version: int) -> None:
        super().__init__(f"ciphertext was sealed with key version {key_version}, which this vault does not hold")
        self.key_version = key_version


class CiphertextRejected(VaultCryptoError):
    """Malformed, tampered with, or sealed for another bot or kind. Deliberately one undifferentiated error."""

    def __init__(self) -> None:
        super().__init__("ciphertext does not open for this bot and kind")


class Keyring:
    """Key versions → AES-256-GCM keys, and the one that seals. Holds only AEAD objects; no repr of keys, no pickle."""

    __slots__ = ("_aeads", "_primary")

    def __init__(self, keys: Mapping[int, bytes], primary_version: int) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one key")
        aeads: dict[int, AESGCM] = {}
        for version, key in keys.items():
            if not 1 <= version <= MAX_KEY_VERSION:
                raise KeyringError(f"key version {version} is out of range 1..{MAX_KEY_VERSION}")
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key version {version} must be {KEY_BYTES} bytes")
            aeads[version] = AESGCM(key)
        if primary_version not in aeads:
            raise KeyringError(f"primary key version {primary_version} is not in the keyring")
        self._aeads = aeads
        self._primary = primary_version

    @property
    def primary_version(self) -> int:
        return self._primary

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._aeads))

    def current(self) -> Keyring:
        """A fixed keyring is its own source (see `KeyringSource`)."""
        return self

    def aead(self, version: int) -> AESGCM:
        try:
            return self._aeads[version]
        except KeyError:
            raise UnknownKeyVersion(version) from None

    def __repr__(self) -> str:
        return f"Keyring(versions={list(self.versions)}, primary_version={self._primary})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Keyring cannot be pickled")


class KeyringSource(Protocol):
    """Where a Cipher gets the keyring for each operation: a fixed `Keyring`, or a rotating `KeyStore`."""

    def current(self) -> Keyring: ...


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    key_version: int


def associated_data(format_version: int, key_version: int, bot_ref: str, kind: SecretKind) -> bytes:
    """Canonical AAD: domain tag, header fields, then each string length-prefixed (no ambiguity)."""
    parts = [_AAD_DOMAIN, _HEADER.pack(format_version, key_version)]
    for text in (bot_ref, kind.value):
        encoded = text.encode("utf-8")
        parts.append(struct.pack(">H", len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


class Cipher:
    """Seals with the keyring's primary version; opens any version the keyring holds.

    Reads the keyring once per operation, so a rotation (a new keyring from the source) never splits a call.
    """

    def __init__(self, keyring: KeyringSource) -> None:
        self._source = keyring

    @property
    def primary_version(self) -> int:
        return self._source.current().primary_version

    def seal(self, bot_ref: str, kind: SecretKind, plaintext: bytes) -> Sealed:
        keyring = self._source.current()
        key_version = keyring.primary_version
        header = _HEADER.pack(FORMAT_VERSION, key_version)
        nonce = os.urandom(NONCE_BYTES)
        aad = associated_data(FORMAT_VERSION, key_version, bot_ref, kind)
        body = keyring.aead(key_version).encrypt(nonce, plaintext, aad)
        return Sealed(ciphertext=header + nonce + body, key_version=key_version)

    def open(self, bot_ref: str, kind: SecretKind, ciphertext: bytes) -> bytes:
        if len(ciphertext) < HEADER_BYTES + TAG_BYTES:
            raise CiphertextRejected()
        format_version, key_version = _HEADER.unpack_from(ciphertext)
        if format_version != FORMAT_VERSION:
            raise CiphertextRejected()
        aead = self._source.current().aead(key_version)
        nonce = ciphertext[_HEADER.size : HEADER_BYTES]
        aad = associated_data(format_version, key_version, bot_ref, kind)
        try:
            return aead.decrypt(nonce, ciphertext[HEADER_BYTES:], aad)
        except InvalidTag:
            raise CiphertextRejected() from None

    @staticmethod
    def key_version_of(ciphertext: bytes) -> int | None:
        """The key version named in the header, or None when there is no readable header."""
        if len(ciphertext) < _HEADER.size:
            return None
        format_version, key_version = _HEADER.unpack_from(ciphertext)
        return int(key_version) if format_version == FORMAT_VERSION else None
