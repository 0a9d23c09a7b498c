from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.grpc_runtime.authorization import ANONYMOUS
from tgm.grpc_runtime.channels import RunningServer
from tgm.services.vault.crypto import Cipher
from tgm.services.vault.grpc.servicer import audit_log
from tgm.services.vault.policy import Caller, Grant, Policy, Verb, caller_of, default_policy
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc
from tgm.vault_client.wire import MAX_PLAINTEXT_BYTES

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT = vault_pb2.SECRET_KIND_BOT_TOKEN
SEND = vault_pb2.PURPOSE_SEND
MANAGE = vault_pb2.PURPOSE_MANAGE
MANAGE_, SEND_ = DecryptPurpose.MANAGE, DecryptPurpose.SEND
BOT_, TEXT_ = SecretKind.BOT_TOKEN, SecretKind.INBOUND_TEXT


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
    outcomes = [(r.verb, r.outcome) for r in caplog.records if r.name == audit_log.name]  # type: ignore[attr-defined]
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
    cipher: Cipher,
    serve_vault: Callable[..., RunningServer],
    connect: Callable[[RunningServer, str], grpc.Channel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry_like = Policy(
        {"tester": {Grant(Verb.ENCRYPT, SecretKind.BOT_TOKEN), Grant(Verb.DECRYPT, SecretKind.BOT_TOKEN, MANAGE_)}}
    )
    running = serve_vault(cipher, registry_like)
    stub = vault_pb2_grpc.VaultServiceStub(connect(running, "tester"))
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


def test_default_policy_is_design_section_4() -> None:
    policy = default_policy()
    every = [Grant(verb, kind) for verb in (Verb.ENCRYPT, Verb.REWRAP) for kind in SecretKind]
    every += [Grant(Verb.DECRYPT, kind, purpose) for kind in SecretKind for purpose in DecryptPurpose]
    every += [Grant(Verb.ROTATE_KEY), Grant(Verb.KEY_STATUS), Grant(Verb.RETIRE_KEY_VERSION)]
    granted = {
        identity: {grant for grant in every if policy.allows(Caller(identity), grant)}
        for identity in ("gateway", "botregistry", "dispatcher", "embedded", "operator", ANONYMOUS, "tester")
    }
    assert granted == {
        "gateway": {Grant(Verb.ENCRYPT, TEXT_)},
        "botregistry": {
            Grant(Verb.ENCRYPT, BOT_),
            Grant(Verb.DECRYPT, BOT_, MANAGE_),
            Grant(Verb.DECRYPT, TEXT_, MANAGE_),
            Grant(Verb.REWRAP, BOT_),
        },
        "dispatcher": {Grant(Verb.DECRYPT, BOT_, SEND_)},
        "embedded": {Grant(Verb.ENCRYPT, TEXT_), Grant(Verb.DECRYPT, BOT_, SEND_)},
        "operator": {Grant(Verb.ROTATE_KEY), Grant(Verb.KEY_STATUS), Grant(Verb.RETIRE_KEY_VERSION)},
        ANONYMOUS: set(),
        "tester": set(),
    }


class _AuthContext:
    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self._auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


@pytest.mark.parametrize(
    ("auth", "identity"),
    [
        # What gRPC gives a server (checked against a real mTLS handshake): `peer_uri` holds the URI SANs only,
        # `x509_subject_alternative_name` every SAN (DNS, e-mail, IP too).
        ({"peer_uri": [b"spiffe://tgm/dispatcher"]}, "dispatcher"),
        ({"peer_uri": [b"spiffe://tgm/botregistry"], "x509_subject_alternative_name": [b"localhost"]}, "botregistry"),
        ({}, ANONYMOUS),  # plaintext peer
        ({"x509_common_name": [b"gateway"]}, ANONYMOUS),  # a CN alone is not an identity
        ({"peer_uri": [b"spiffe://tgm/gateway", b"spiffe://tgm/dispatcher"]}, ANONYMOUS),
        ({"peer_uri": [b"spiffe://other/dispatcher"]}, ANONYMOUS),
        ({"peer_uri": [b"spiffe://tgm/dispatcher/x"]}, ANONYMOUS),
        # A DNS (or e-mail, IP) entry spelled like an identity is not one (issue 11, item 10).
        ({"x509_subject_alternative_name": [b"spiffe://tgm/operator"]}, ANONYMOUS),
    ],
)
def test_certificate_caller_resolver(auth: dict[str, list[bytes]], identity: str) -> None:
    assert caller_of(_AuthContext(auth)).identity == identity  # type: ignore[arg-type]


def test_secret_kind_labels_are_stable() -> None:
    # The kind's label is part of the AEAD associated data: renaming it would orphan every stored ciphertext.
    assert [k.value for k in SecretKind] == ["bot_token", "inbound_text"]


def test_container_wires_one_servicer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tgm.services.vault.commands import init_keyring
    from tgm.services.vault.container import VaultContainer

    monkeypatch.setenv("ENCRYPTION_KEY", "base64:" + base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("VAULT_KEYRING_FILE", str(tmp_path / "vault" / "keyring.json"))
    monkeypatch.setenv("VAULT_AUDIT_FILE", str(tmp_path / "audit.log"))
    monkeypatch.delenv("VAULT_AUDIT_ANCHOR_FILE", raising=False)
    init_keyring()
    container = VaultContainer()
    assert container.servicer() is container.servicer()
    assert not container.policy().may_use(Caller(ANONYMOUS), Verb.ENCRYPT)


def test_a_failed_audit_write_refuses_the_call_and_every_later_one(
    stub: vault_pb2_grpc.VaultServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, item 4: fail closed — a call that cannot be recorded is refused, and the log stays shut."""
    _encrypt(stub)  # recorded
    real_write = os.write
    with monkeypatch.context() as patch:

        def disk_full(fd: int, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        patch.setattr(os, "write", disk_full)
        with pytest.raises(grpc.RpcError) as failed:
            _encrypt(stub)
        assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert os.write is real_write
    with pytest.raises(grpc.RpcError) as refused:  # the disk is fine again; the log is not trusted until a restart
        _encrypt(stub)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
