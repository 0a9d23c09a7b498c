"""One contract, two adapters: InMemoryTokenVault and GrpcTokenVault against a real in-process vault server."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.support.fake_vault import InMemoryTokenVault
from tgm.domain.errors import VaultUnavailable
from tgm.domain.ports import DecryptPurpose, SecretKind, TokenVault
from tgm.grpc_runtime.channels import RunningServer
from tgm.vault_client import GrpcTokenVault

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture(params=["memory", "grpc"])
def vault(request: pytest.FixtureRequest) -> Iterator[TokenVault]:
    if request.param == "memory":
        yield InMemoryTokenVault()
        return
    server: RunningServer = request.getfixturevalue("vault_server")
    yield GrpcTokenVault(request.getfixturevalue("connect")(server, "tester"))


@pytest.mark.parametrize("purpose", list(DecryptPurpose))
@pytest.mark.parametrize("kind", list(SecretKind))
def test_round_trip(vault: TokenVault, kind: SecretKind, purpose: DecryptPurpose) -> None:
    ciphertext = vault.encrypt("bot-a", kind, TOKEN)
    assert isinstance(ciphertext, bytes)
    assert TOKEN.encode() not in ciphertext
    assert vault.decrypt("bot-a", kind, purpose, ciphertext) == TOKEN


def test_round_trip_of_non_ascii_and_empty_text(vault: TokenVault) -> None:
    for text in ("héllo ✓ 🔑", ""):
        sealed = vault.encrypt("bot-a", SecretKind.INBOUND_TEXT, text)
        assert vault.decrypt("bot-a", SecretKind.INBOUND_TEXT, DecryptPurpose.SEND, sealed) == text


def test_two_seals_of_the_same_secret_differ(vault: TokenVault) -> None:
    assert vault.encrypt("bot-a", SecretKind.BOT_TOKEN, TOKEN) != vault.encrypt("bot-a", SecretKind.BOT_TOKEN, TOKEN)


def test_does_not_open_for_another_bot(vault: TokenVault) -> None:
    sealed = vault.encrypt("bot-a", SecretKind.BOT_TOKEN, TOKEN)
    with pytest.raises(VaultUnavailable) as info:
        vault.decrypt("bot-b", SecretKind.BOT_TOKEN, DecryptPurpose.SEND, sealed)
    assert TOKEN not in str(info.value)


def test_does_not_open_as_another_kind(vault: TokenVault) -> None:
    sealed = vault.encrypt("bot-a", SecretKind.INBOUND_TEXT, TOKEN)
    with pytest.raises(VaultUnavailable):
        vault.decrypt("bot-a", SecretKind.BOT_TOKEN, DecryptPurpose.MANAGE, sealed)


def test_tampered_ciphertext_does_not_open(vault: TokenVault) -> None:
    sealed = bytearray(vault.encrypt("bot-a", SecretKind.BOT_TOKEN, TOKEN))
    sealed[-1] ^= 0x01
    with pytest.raises(VaultUnavailable):
        vault.decrypt("bot-a", SecretKind.BOT_TOKEN, DecryptPurpose.SEND, bytes(sealed))


@pytest.mark.parametrize("bot_ref", ["", "b" * 65])
def test_bad_bot_ref_is_refused(vault: TokenVault, bot_ref: str) -> None:
    with pytest.raises(VaultUnavailable):
        vault.encrypt(bot_ref, SecretKind.BOT_TOKEN, TOKEN)


def test_oversized_plaintext_is_refused(vault: TokenVault) -> None:
    vault.encrypt("bot-a", SecretKind.INBOUND_TEXT, "x" * 4096)
    with pytest.raises(VaultUnavailable) as info:
        vault.encrypt("bot-a", SecretKind.INBOUND_TEXT, "x" * 4097)
    assert "xxxx" not in str(info.value)


def test_grpc_vault_unreachable_is_vault_unavailable_without_payload() -> None:
    with grpc.insecure_channel("127.0.0.1:1") as channel:
        vault = GrpcTokenVault(channel, timeout_seconds=1.0)
        with pytest.raises(VaultUnavailable) as info:
            vault.encrypt("bot-a", SecretKind.BOT_TOKEN, TOKEN)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert TOKEN not in str(info.value)
    assert "UNAVAILABLE" in str(info.value)
