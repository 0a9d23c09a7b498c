from __future__ import annotations

import os
import pickle

import pytest

from tgm.domain.ports import SecretKind
from tgm.services.vault.crypto import (
    FORMAT_VERSION,
    HEADER_BYTES,
    Cipher,
    CiphertextRejected,
    Keyring,
    KeyringError,
    UnknownKeyVersion,
)

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_round_trip(cipher: Cipher) -> None:
    sealed = cipher.seal("bot-a", SecretKind.BOT_TOKEN, TOKEN.encode())
    assert sealed.key_version == 1
    assert TOKEN.encode() not in sealed.ciphertext
    assert cipher.open("bot-a", SecretKind.BOT_TOKEN, sealed.ciphertext) == TOKEN.encode()


def test_layout_is_version_keyversion_nonce_body(cipher: Cipher) -> None:
    sealed = cipher.seal("bot-a", SecretKind.BOT_TOKEN, b"x" * 10)
    assert sealed.ciphertext[0] == FORMAT_VERSION
    assert int.from_bytes(sealed.ciphertext[1:5], "big") == 1
    assert len(sealed.ciphertext) == HEADER_BYTES + 10 + 16


def test_each_seal_uses_a_fresh_nonce(cipher: Cipher) -> None:
    first = cipher.seal("bot-a", SecretKind.BOT_TOKEN, b"same")
    second = cipher.seal("bot-a", SecretKind.BOT_TOKEN, b"same")
    assert first.ciphertext != second.ciphertext


def test_ciphertext_for_bot_a_does_not_open_as_bot_b(cipher: Cipher) -> None:
    sealed = cipher.seal("bot-a", SecretKind.BOT_TOKEN, TOKEN.encode())
    with pytest.raises(CiphertextRejected):
        cipher.open("bot-b", SecretKind.BOT_TOKEN, sealed.ciphertext)


def test_bot_ref_encoding_is_unambiguous(cipher: Cipher) -> None:
    # Without length prefixes "ab"+"c" and "a"+"bc" style collisions could line up; prefixes rule that out.
    sealed = cipher.seal("bot-a", SecretKind.BOT_TOKEN, b"s")
    with pytest.raises(CiphertextRejected):
        cipher.open("bot-abot_token", SecretKind.BOT_TOKEN, sealed.ciphertext)


def test_ciphertext_does_not_open_as_another_kind(cipher: Cipher) -> None:
    sealed = cipher.seal("bot-a", SecretKind.INBOUND_TEXT, TOKEN.encode())
    with pytest.raises(CiphertextRejected):
        cipher.open("bot-a", SecretKind.BOT_TOKEN, sealed.ciphertext)


@pytest.mark.parametrize("where", ["format", "key_version_low", "nonce", "body", "tag"])
def test_a_flipped_byte_fails(cipher: Cipher, where: str) -> None:
    sealed = cipher.seal("bot-a", SecretKind.BOT_TOKEN, TOKEN.encode())
    index = {"format": 0, "key_version_low": 4, "nonce": 6, "body": HEADER_BYTES + 3, "tag": -1}[where]
    tampered = bytearray(sealed.ciphertext)
    tampered[index] ^= 0x01
    with pytest.raises((CiphertextRejected, UnknownKeyVersion)):
        cipher.open("bot-a", SecretKind.BOT_TOKEN, bytes(tampered))


@pytest.mark.parametrize("length", [0, 1, 5, HEADER_BYTES, HEADER_BYTES + 15])
def test_truncated_ciphertext_is_rejected(cipher: Cipher, length: int) -> None:
    sealed = cipher.seal("bot-a", SecretKind.BOT_TOKEN, b"")
    with pytest.raises(CiphertextRejected):
        cipher.open("bot-a", SecretKind.BOT_TOKEN, sealed.ciphertext[:length])


def test_unknown_key_version_fails_with_a_clear_error(key: bytes) -> None:
    old = Cipher(Keyring({7: key}, primary_version=7))
    sealed = old.seal("bot-a", SecretKind.BOT_TOKEN, b"secret")
    current = Cipher(Keyring({8: os.urandom(32)}, primary_version=8))
    with pytest.raises(UnknownKeyVersion, match="key version 7") as info:
        current.open("bot-a", SecretKind.BOT_TOKEN, sealed.ciphertext)
    assert info.value.key_version == 7


def test_rotation_seals_with_primary_and_opens_older_versions() -> None:
    v1, v2 = os.urandom(32), os.urandom(32)
    before = Cipher(Keyring({1: v1}, primary_version=1)).seal("bot-a", SecretKind.BOT_TOKEN, b"old")
    rotated = Cipher(Keyring({1: v1, 2: v2}, primary_version=2))
    after = rotated.seal("bot-a", SecretKind.BOT_TOKEN, b"new")
    assert after.key_version == 2
    assert rotated.open("bot-a", SecretKind.BOT_TOKEN, before.ciphertext) == b"old"
    assert rotated.open("bot-a", SecretKind.BOT_TOKEN, after.ciphertext) == b"new"


def test_same_key_under_another_version_number_does_not_open(key: bytes) -> None:
    sealed = Cipher(Keyring({1: key}, primary_version=1)).seal("bot-a", SecretKind.BOT_TOKEN, b"s")
    relabelled = bytearray(sealed.ciphertext)
    relabelled[1:5] = (2).to_bytes(4, "big")
    with pytest.raises(CiphertextRejected):
        Cipher(Keyring({2: key}, primary_version=2)).open("bot-a", SecretKind.BOT_TOKEN, bytes(relabelled))


def test_key_never_appears_in_repr_str_or_pickle(key: bytes) -> None:
    keyring = Keyring({1: key}, primary_version=1)
    shown = repr(keyring) + str(keyring) + repr(Cipher(keyring))
    assert key.hex() not in shown
    assert repr(key) not in shown
    assert "versions=[1]" in repr(keyring)
    with pytest.raises(TypeError):
        pickle.dumps(keyring)


@pytest.mark.parametrize(
    ("keys", "primary"),
    [({}, 1), ({1: b"short"}, 1), ({0: os.urandom(32)}, 0), ({1: os.urandom(32)}, 2), ({2**32: os.urandom(32)}, 2**32)],
)
def test_bad_keyrings_are_refused(keys: dict[int, bytes], primary: int) -> None:
    with pytest.raises(KeyringError):
        Keyring(keys, primary)
