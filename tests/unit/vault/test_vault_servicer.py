from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable

import grpc
import pytest

from libs.domain.ports import SecretKind
from services.vault.crypto import Cipher
from services.vault.grpc.server import RunningServer
from services.vault.grpc.servicer import MAX_PLAINTEXT_BYTES
from services.vault.policy import (
    UNAUTHENTICATED_LOOPBACK,
    UNAUTHENTICATED_REMOTE,
    Caller,
    PeerCallerResolver,
    Policy,
    Verb,
    default_policy,
)
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT = vault_pb2.SECRET_KIND_BOT_TOKEN
SEND = vault_pb2.PURPOSE_SEND


@pytest.fixture
def stub(vault_channel: grpc.Channel) -> vault_pb2_grpc.VaultServiceStub:
    return vault_pb2_grpc.VaultServiceStub(vault_channel)


def _encrypt(stub: vault_pb2_grpc.VaultServiceStub, bot_ref: str = "bot-a", plaintext: bytes = TOKEN.encode()) -> bytes:
    reply = stub.Encrypt(vault_pb2.EncryptRequest(bot_ref=bot_ref, kind=BOT, plaintext=plaintext), timeout=5)
    assert reply.key_version == 1
    return bytes(reply.ciphertext)


def test_round_trip_over_grpc(stub: vault_pb2_grpc.VaultServiceStub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ciphertext = _encrypt(stub)
    reply = stub.Decrypt(vault_pb2.DecryptRequest(bot_ref="bot-a", kind=BOT, purpose=SEND, ciphertext=ciphertext))
    assert reply.plaintext == TOKEN.encode()
    outcomes = [(r.verb, r.outcome) for r in caplog.records if r.name == "services.vault.audit"]  # type: ignore[attr-defined]
    assert outcomes == [("encrypt", "ok"), ("decrypt", "ok")]
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in " ".join(str(r.__dict__) for r in caplog.records)


@pytest.mark.parametrize(
    "request_",
    [
        vault_pb2.EncryptRequest(bot_ref="", kind=BOT, plaintext=b"p"),
        vault_pb2.EncryptRequest(bot_ref="b" * 65, kind=BOT, plaintext=b"p"),
        vault_pb2.EncryptRequest(bot_ref="bot\nforged-log-line", kind=BOT, plaintext=b"p"),
        vault_pb2.EncryptRequest(bot_ref="bot-a", kind=vault_pb2.SECRET_KIND_UNSPECIFIED, plaintext=b"p"),
        vault_pb2.EncryptRequest(bot_ref="bot-a", kind=99, plaintext=b"p"),  # type: ignore[arg-type]
        vault_pb2.EncryptRequest(bot_ref="bot-a", kind=BOT, plaintext=b"p" * (MAX_PLAINTEXT_BYTES + 1)),
    ],
    ids=["empty-bot", "long-bot", "control-char-bot", "kind-unspecified", "kind-unknown", "plaintext-too-long"],
)
def test_invalid_encrypt_is_invalid_argument(
    stub: vault_pb2_grpc.VaultServiceStub, request_: vault_pb2.EncryptRequest
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Encrypt(request_, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "forged" not in (info.value.details() or "")


def test_plaintext_at_the_limit_is_accepted(stub: vault_pb2_grpc.VaultServiceStub) -> None:
    _encrypt(stub, plaintext=b"p" * MAX_PLAINTEXT_BYTES)


@pytest.mark.parametrize(
    ("change", "expected_details"),
    [
        ({"bot_ref": "bot-b"}, "does not open"),
        ({"kind": vault_pb2.SECRET_KIND_INBOUND_TEXT}, "does not open"),
        ({"purpose": vault_pb2.PURPOSE_UNSPECIFIED}, "purpose"),
        ({"kind": vault_pb2.SECRET_KIND_UNSPECIFIED}, "kind"),
        ({"bot_ref": ""}, "bot_ref"),
        ({"ciphertext": b""}, "ciphertext"),
        ({"ciphertext": b"\x01" * 10_000}, "ciphertext"),
        ({"ciphertext": b"\x01\x00\x00\x00\x09" + b"\x00" * 40}, "key version"),
        ({"ciphertext": b"\x02\x00\x00\x00\x01" + b"\x00" * 40}, "does not open"),
    ],
)
def test_invalid_decrypt_is_invalid_argument_with_a_generic_message(
    stub: vault_pb2_grpc.VaultServiceStub, change: dict[str, object], expected_details: str
) -> None:
    fields: dict[str, object] = {"bot_ref": "bot-a", "kind": BOT, "purpose": SEND, "ciphertext": _encrypt(stub)}
    fields.update(change)
    with pytest.raises(grpc.RpcError) as info:
        stub.Decrypt(vault_pb2.DecryptRequest(**fields), timeout=5)  # type: ignore[arg-type]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert expected_details in details
    assert "bot-a" not in details and "bot-b" not in details


def test_tampered_ciphertext_over_grpc(stub: vault_pb2_grpc.VaultServiceStub) -> None:
    tampered = bytearray(_encrypt(stub))
    tampered[-5] ^= 0x80
    with pytest.raises(grpc.RpcError) as info:
        stub.Decrypt(vault_pb2.DecryptRequest(bot_ref="bot-a", kind=BOT, purpose=SEND, ciphertext=bytes(tampered)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_policy_refusal_is_permission_denied(
    cipher: Cipher, serve_vault: Callable[..., RunningServer], caplog: pytest.LogCaptureFixture
) -> None:
    registry_like = Policy({UNAUTHENTICATED_LOOPBACK: frozenset({Verb.ENCRYPT, Verb.DECRYPT_MANAGE})})
    running = serve_vault(cipher, registry_like)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = vault_pb2_grpc.VaultServiceStub(channel)
        ciphertext = _encrypt(stub)
        manage = vault_pb2.DecryptRequest(
            bot_ref="bot-a", kind=BOT, purpose=vault_pb2.PURPOSE_MANAGE, ciphertext=ciphertext
        )
        assert stub.Decrypt(manage, timeout=5).plaintext == TOKEN.encode()
        with pytest.raises(grpc.RpcError) as info:
            stub.Decrypt(
                vault_pb2.DecryptRequest(bot_ref="bot-a", kind=BOT, purpose=SEND, ciphertext=ciphertext), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert any(getattr(r, "outcome", None) == "denied" for r in caplog.records)


def test_default_policy_grants_loopback_everything_and_others_nothing() -> None:
    policy = default_policy()
    for verb in Verb:
        assert policy.allows(Caller(UNAUTHENTICATED_LOOPBACK), verb)
        assert not policy.allows(Caller(UNAUTHENTICATED_REMOTE), verb)
        assert not policy.allows(Caller("gateway"), verb)


class _PeerContext:
    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer


@pytest.mark.parametrize(
    ("peer", "identity"),
    [
        ("ipv4:127.0.0.1:5555", UNAUTHENTICATED_LOOPBACK),
        ("ipv6:[::1]:5555", UNAUTHENTICATED_LOOPBACK),
        ("unix:/tmp/vault.sock", UNAUTHENTICATED_LOOPBACK),
        ("ipv4:10.0.0.7:5555", UNAUTHENTICATED_REMOTE),
        ("ipv6:[2001:db8::1]:5555", UNAUTHENTICATED_REMOTE),
        ("ipv4:1270.0.0.1:1", UNAUTHENTICATED_REMOTE),
    ],
)
def test_peer_caller_resolver(peer: str, identity: str) -> None:
    assert PeerCallerResolver().caller_of(_PeerContext(peer)).identity == identity  # type: ignore[arg-type]


def test_secret_kind_labels_are_stable() -> None:
    # The kind's label is part of the AEAD associated data: renaming it would orphan every stored ciphertext.
    assert [k.value for k in SecretKind] == ["bot_token", "inbound_text"]


def test_remote_unauthenticated_callers_only_with_explicit_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.vault.container import VaultContainer

    monkeypatch.setenv("ENCRYPTION_KEY", "base64:" + base64.b64encode(os.urandom(32)).decode())
    monkeypatch.delenv("VAULT_KEYS", raising=False)
    monkeypatch.delenv("VAULT_UNAUTHENTICATED_PEERS", raising=False)
    assert not VaultContainer().policy().allows(Caller(UNAUTHENTICATED_REMOTE), Verb.ENCRYPT)
    monkeypatch.setenv("VAULT_UNAUTHENTICATED_PEERS", "any")
    container = VaultContainer()
    assert container.policy().allows(Caller(UNAUTHENTICATED_REMOTE), Verb.DECRYPT_SEND)
    assert container.servicer() is container.servicer()
