"""Caller × verb over real gRPC with real certificates; unauthenticated peers never reach the servicer."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import grpc
import pytest

from tests.security.conftest import Vault
from tests.support.vault_server import start_vault
from tgm.domain.ports import SecretKind
from tgm.grpc_runtime.channels import VAULT_SERVER_NAME, expected_server_name, open_channel
from tgm.grpc_runtime.tls import TlsConfigError, TlsFiles
from tgm.services.vault.audit import AuditLog
from tgm.services.vault.crypto import Cipher
from tgm.services.vault.grpc.servicer import VaultServicer
from tgm.services.vault.keystore import KeyStore
from tgm.services.vault.policy import default_policy
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc

TOKEN = b"123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT = vault_pb2.SECRET_KIND_BOT_TOKEN
TEXT = vault_pb2.SECRET_KIND_INBOUND_TEXT
KINDS = {"bot_token": BOT, "inbound_text": TEXT}
PURPOSES = {"manage": vault_pb2.PURPOSE_MANAGE, "send": vault_pb2.PURPOSE_SEND}

# Written out here, independently of tgm.services.vault.policy: DESIGN §4 plus the operator and embedded identities.
# A use is "verb[:kind[:purpose]]".
ALLOWED = {
    "gateway": {"encrypt:inbound_text"},
    "botregistry": {
        "encrypt:bot_token",
        "decrypt:bot_token:manage",
        "decrypt:inbound_text:manage",
        "rewrap:bot_token",
    },
    "dispatcher": {"decrypt:bot_token:send"},
    "embedded": {"encrypt:inbound_text", "decrypt:bot_token:send"},
    "operator": {"rotate_key", "key_status", "retire_key_version"},
    "stranger": set(),
}
USES = [
    *(f"encrypt:{kind}" for kind in KINDS),
    *(f"decrypt:{kind}:{purpose}" for kind in KINDS for purpose in PURPOSES),
    *(f"rewrap:{kind}" for kind in KINDS),
    "rotate_key",
    "key_status",
    "retire_key_version",
]


def _sealed(vault: Vault, bot_ref: str = "bot-a", kind: SecretKind = SecretKind.BOT_TOKEN) -> bytes:
    return vault.cipher.seal(bot_ref, kind, TOKEN).ciphertext


def _invoke(vault: Vault, stub: vault_pb2_grpc.VaultServiceStub, use: str) -> None:
    verb, *rest = use.split(":")
    kind = KINDS[rest[0]] if rest else BOT
    sealed = _sealed(vault, kind=SecretKind(rest[0])) if rest else b""
    if verb == "encrypt":
        reply = stub.Encrypt(vault_pb2.EncryptRequest(bot_ref="bot-a", kind=kind, plaintext=TOKEN))
        assert Cipher.key_version_of(reply.ciphertext) == 1
    elif verb == "decrypt":
        request = vault_pb2.DecryptRequest(bot_ref="bot-a", kind=kind, purpose=PURPOSES[rest[1]], ciphertext=sealed)
        assert stub.Decrypt(request).plaintext == TOKEN
    elif verb == "rewrap":
        reply = stub.Rewrap(vault_pb2.RewrapRequest(bot_ref="bot-a", kind=kind, ciphertext=sealed))
        assert reply.key_version == 1 and not reply.changed
    elif verb == "rotate_key":
        assert stub.RotateKey(vault_pb2.RotateKeyRequest()).primary_version == 2
    elif verb == "key_status":
        assert stub.KeyStatus(vault_pb2.KeyStatusRequest()).primary_version == 1
    elif verb == "retire_key_version":
        vault.keys.rotate()
        stub.RetireKeyVersion(vault_pb2.RetireKeyVersionRequest(version=1))
    else:
        raise AssertionError(use)


@pytest.mark.parametrize("use", USES)
@pytest.mark.parametrize("identity", sorted(ALLOWED))
def test_caller_verb_kind_matrix(vault: Vault, identity: str, use: str) -> None:
    stub = vault_pb2_grpc.VaultServiceStub(vault.channel(identity))
    if use in ALLOWED[identity]:
        _invoke(vault, stub, use)
        expected_outcome = "ok"
    else:
        with pytest.raises(grpc.RpcError) as info:
            _invoke(vault, stub, use)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value.details()
        expected_outcome = "denied"
    last = json.loads(vault.audit_lines()[-1])
    verb, *rest = use.split(":")
    assert (last["caller"], last["verb"], last["outcome"]) == (identity, verb, expected_outcome)
    assert [last["kind"], last["purpose"]][: len(rest)] == rest


MALFORMED = {
    "encrypt": lambda stub: stub.Encrypt(vault_pb2.EncryptRequest(bot_ref="", kind=0, plaintext=b"x" * 10_000)),
    "decrypt": lambda stub: stub.Decrypt(vault_pb2.DecryptRequest(bot_ref="\n" * 100, kind=0, purpose=0)),
    "rewrap": lambda stub: stub.Rewrap(vault_pb2.RewrapRequest(bot_ref="bot-a", kind=0, ciphertext=b"")),
    "retire_key_version": lambda stub: stub.RetireKeyVersion(vault_pb2.RetireKeyVersionRequest(version=99)),
}


@pytest.mark.parametrize(
    ("identity", "verb"),
    [("stranger", verb) for verb in MALFORMED]
    + [("gateway", "decrypt"), ("gateway", "rewrap"), ("dispatcher", "encrypt"), ("botregistry", "retire_key_version")],
)
def test_unauthorized_callers_are_denied_before_their_input_is_looked_at(
    vault: Vault, identity: str, verb: str
) -> None:
    stub = vault_pb2_grpc.VaultServiceStub(vault.channel(identity))
    with pytest.raises(grpc.RpcError) as info:
        MALFORMED[verb](stub)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    last = json.loads(vault.audit_lines()[-1])
    assert (last["caller"], last["verb"], last["outcome"]) == (identity, verb, "denied")
    assert last["bot"] in (None, "bot-a")  # a malformed bot_ref is not copied into the audit line


def test_authorized_callers_still_get_input_errors(vault: Vault) -> None:
    stub = vault_pb2_grpc.VaultServiceStub(vault.channel("botregistry"))
    for call in (MALFORMED["encrypt"], MALFORMED["decrypt"], MALFORMED["rewrap"]):
        with pytest.raises(grpc.RpcError) as info:
            call(stub)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert json.loads(vault.audit_lines()[-1])["outcome"] == "invalid_argument"


def _refused_at_handshake(vault: Vault, credentials: grpc.ChannelCredentials | None) -> None:
    channel = (
        grpc.secure_channel(vault.target, credentials)
        if credentials is not None
        else grpc.insecure_channel(vault.target)
    )
    with channel:
        stub = vault_pb2_grpc.VaultServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Encrypt(vault_pb2.EncryptRequest(bot_ref="bot-a", kind=BOT, plaintext=TOKEN), timeout=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert vault.audit_lines() == []  # never reached the servicer


def _credentials(ca: TlsFiles, client: TlsFiles | None) -> grpc.ChannelCredentials:
    root = ca.ca_file.read_bytes()
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.ssl_channel_credentials(root, client.key_file.read_bytes(), client.cert_file.read_bytes())


def test_no_client_certificate_cannot_connect(vault: Vault, certs: dict[str, TlsFiles]) -> None:
    _refused_at_handshake(vault, _credentials(certs["gateway"], None))


def test_plaintext_client_cannot_connect(vault: Vault) -> None:
    _refused_at_handshake(vault, None)


def test_certificate_from_another_ca_cannot_connect(
    vault: Vault, certs: dict[str, TlsFiles], foreign_certs: dict[str, TlsFiles]
) -> None:
    # Trusts the right CA for the server, but presents a `botregistry` certificate signed by another CA.
    _refused_at_handshake(vault, _credentials(certs["botregistry"], foreign_certs["botregistry"]))


def test_server_only_certificate_cannot_be_used_as_a_client(vault: Vault, certs: dict[str, TlsFiles]) -> None:
    # The vault's certificate has only the serverAuth usage: a stolen copy cannot call the vault.
    _refused_at_handshake(vault, _credentials(certs["vault"], certs["vault"]))


def test_client_of_another_ca_does_not_trust_the_vault(vault: Vault, foreign_certs: dict[str, TlsFiles]) -> None:
    _refused_at_handshake(vault, _credentials(foreign_certs["botregistry"], foreign_certs["botregistry"]))


@pytest.mark.parametrize(
    "change",
    [{"bot_ref": "bot-b"}, {"kind": vault_pb2.SECRET_KIND_INBOUND_TEXT}, {"tamper": -1}, {"tamper": 7}],
    ids=["swapped-to-another-bot", "another-kind", "tampered-tag", "tampered-nonce"],
)
def test_swapped_or_tampered_ciphertext_does_not_open(vault: Vault, change: dict[str, object]) -> None:
    stub = vault_pb2_grpc.VaultServiceStub(vault.channel("botregistry"))
    ciphertext = bytearray(
        stub.Encrypt(vault_pb2.EncryptRequest(bot_ref="bot-a", kind=BOT, plaintext=TOKEN)).ciphertext
    )
    assert (
        stub.Decrypt(
            vault_pb2.DecryptRequest(
                bot_ref="bot-a", kind=BOT, purpose=vault_pb2.PURPOSE_MANAGE, ciphertext=bytes(ciphertext)
            )
        ).plaintext
        == TOKEN
    )
    fields: dict[str, object] = {"bot_ref": "bot-a", "kind": BOT, "purpose": vault_pb2.PURPOSE_MANAGE}
    if "tamper" in change:
        ciphertext[int(str(change["tamper"]))] ^= 0x01
    else:
        fields.update(change)
    decrypt = vault_pb2.DecryptRequest(ciphertext=bytes(ciphertext), **fields)  # type: ignore[arg-type]
    rewrap = vault_pb2.RewrapRequest(ciphertext=bytes(ciphertext), bot_ref=decrypt.bot_ref, kind=decrypt.kind)
    calls = [(stub.Decrypt, decrypt)] + ([(stub.Rewrap, rewrap)] if rewrap.kind == BOT else [])  # registry: bot tokens
    for call, request in calls:
        with pytest.raises(grpc.RpcError) as info:
            call(request)  # type: ignore[operator]
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert json.loads(vault.audit_lines()[-1])["outcome"] == "rejected"


def test_identity_cannot_be_claimed_in_a_request_field(vault: Vault) -> None:
    # Metadata is request data too: a dispatcher saying it is the registry is still the dispatcher.
    stub = vault_pb2_grpc.VaultServiceStub(vault.channel("dispatcher"))
    request = vault_pb2.DecryptRequest(
        bot_ref="bot-a", kind=BOT, purpose=vault_pb2.PURPOSE_MANAGE, ciphertext=_sealed(vault)
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.Decrypt(request, metadata=[("x-caller", "botregistry"), ("x-spiffe-id", "spiffe://tgm/botregistry")])
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert json.loads(vault.audit_lines()[-1])["caller"] == "dispatcher"


def test_audit_lines_never_hold_plaintext_ciphertext_or_keys(vault: Vault) -> None:
    registry = vault_pb2_grpc.VaultServiceStub(vault.channel("botregistry"))
    stub = vault_pb2_grpc.VaultServiceStub(vault.channel("embedded"))
    reply = registry.Encrypt(
        vault_pb2.EncryptRequest(bot_ref="bot-a", kind=BOT, plaintext=TOKEN), metadata=[("x-request-id", "req-123")]
    )
    stub.Decrypt(
        vault_pb2.DecryptRequest(bot_ref="bot-a", kind=BOT, purpose=vault_pb2.PURPOSE_SEND, ciphertext=reply.ciphertext)
    )
    text = vault.audit_file.read_text()
    assert TOKEN.decode() not in text and TOKEN.split(b":")[1].decode() not in text
    assert reply.ciphertext.hex() not in text
    assert json.loads(text.splitlines()[0])["request_id"] == "req-123"
    key = json.loads(vault.keyring_file.read_text())["versions"]["1"]["key"].removeprefix("base64:")
    assert key not in text


def test_a_server_with_another_services_certificate_is_refused(tmp_path: Path, certs: dict[str, TlsFiles]) -> None:
    """An impostor "vault" holding the botregistry's certificate: vault clients refuse it at the handshake."""
    keys = KeyStore.create(tmp_path / "keyring.json", os.urandom(32))
    audit = AuditLog(
        tmp_path / "audit.log", key=os.urandom(32), anchor_path=tmp_path / "audit.anchor", anchor_may_be_missing=True
    )
    servicer = VaultServicer(Cipher(keys), default_policy(), keys=keys, audit=audit)
    impostor = start_vault(servicer, "127.0.0.1:0", certs["botregistry"])
    target = f"127.0.0.1:{impostor.port}"
    request = vault_pb2.EncryptRequest(bot_ref="bot-a", kind=TEXT, plaintext=TOKEN)
    try:
        with open_channel(target, tls=certs["gateway"], server_name=VAULT_SERVER_NAME) as channel:
            with pytest.raises(grpc.RpcError) as info:
                vault_pb2_grpc.VaultServiceStub(channel).Encrypt(request, timeout=3)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        # The same server is reachable as what its certificate says it is: the name check did the refusing.
        with open_channel(target, tls=certs["gateway"], server_name="botregistry") as channel:
            assert vault_pb2_grpc.VaultServiceStub(channel).Encrypt(request, timeout=3).ciphertext
    finally:
        impostor.stop(grace_seconds=0)


def test_tls_channels_always_check_a_service_name(monkeypatch: pytest.MonkeyPatch, certs: dict[str, TlsFiles]) -> None:
    monkeypatch.setenv("VAULT_ADDR", "127.0.0.1:7001")
    monkeypatch.setenv("REGISTRY_ADDR", "127.0.0.1:7002")
    assert expected_server_name("127.0.0.1:7001") == "vault"
    assert expected_server_name("127.0.0.1:7002") == "botregistry"
    assert expected_server_name("vault:50051") == "vault"
    assert expected_server_name("botregistry:50052") == "botregistry"
    assert expected_server_name("127.0.0.1:7003") is None
    with pytest.raises(TlsConfigError, match="server_name"):
        open_channel("127.0.0.1:7003", tls=certs["gateway"])


@pytest.mark.parametrize("bad", ["has space", "x" * 65, 'quote"', "ünïcode", "a_b", "line\u2028break"])
def test_malformed_request_ids_are_replaced(vault: Vault, bad: str) -> None:
    stub = vault_pb2_grpc.VaultServiceStub(vault.channel("gateway"))
    request = vault_pb2.EncryptRequest(bot_ref="bot-a", kind=TEXT, plaintext=b"hi")
    try:
        stub.Encrypt(request, metadata=[("x-request-id", bad)])
    except (ValueError, grpc.RpcError):
        pytest.skip("grpc refuses this metadata value on the client side already")
    request_id = json.loads(vault.audit_lines()[-1])["request_id"]
    assert request_id != bad and re.fullmatch(r"[A-Za-z0-9-]{1,64}", request_id)
