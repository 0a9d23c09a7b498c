"""`TokenVault` over gRPC. Any failure becomes VaultUnavailable, never carrying request or response payload."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from tgm.domain.errors import SecretRejected, VaultUnavailable
from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc
from tgm.vault_client.wire import KINDS, PURPOSES


def ciphertext_key_version(ciphertext: bytes) -> int | None:
    """The key version in a vault ciphertext's public header (format byte 1, then 4 bytes big-endian), or None.

    The header is not secret and is authenticated by the vault; this is for bookkeeping (e.g. rewrap's rescan).
    """
    if len(ciphertext) < 5 or ciphertext[0] != 1:
        return None
    return int.from_bytes(ciphertext[1:5], "big")


@dataclass(frozen=True)
class Rewrapped:
    ciphertext: bytes
    key_version: int
    changed: bool


class GrpcTokenVault:
    """Implements tgm.domain.ports.TokenVault. Use with `tgm.grpc_runtime.channels.open_channel(VAULT_ADDR)`."""

    def __init__(self, channel: grpc.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = vault_pb2_grpc.VaultServiceStub(channel)
        self._timeout = timeout_seconds

    def encrypt(self, bot_ref: str, kind: SecretKind, plaintext: str) -> bytes:
        request = vault_pb2.EncryptRequest(bot_ref=bot_ref, kind=KINDS[kind], plaintext=plaintext.encode("utf-8"))
        try:
            response = self._stub.Encrypt(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _unavailable("Encrypt", exc) from None
        return response.ciphertext

    def decrypt(self, bot_ref: str, kind: SecretKind, purpose: DecryptPurpose, ciphertext: bytes) -> str:
        request = vault_pb2.DecryptRequest(
            bot_ref=bot_ref, kind=KINDS[kind], purpose=PURPOSES[purpose], ciphertext=ciphertext
        )
        try:
            response = self._stub.Decrypt(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _unavailable("Decrypt", exc) from None
        try:
            return response.plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise VaultUnavailable("vault Decrypt returned a secret that is not UTF-8 text") from None

    def rewrap(self, bot_ref: str, kind: SecretKind, ciphertext: bytes) -> Rewrapped:
        """Re-seals under the vault's primary key version (unchanged if it already was); plaintext stays inside."""
        request = vault_pb2.RewrapRequest(bot_ref=bot_ref, kind=KINDS[kind], ciphertext=ciphertext)
        try:
            response = self._stub.Rewrap(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _unavailable("Rewrap", exc) from None
        return Rewrapped(bytes(response.ciphertext), response.key_version, response.changed)


def _unavailable(verb: str, exc: grpc.RpcError) -> VaultUnavailable:
    # Only the status code: details are the server's words and the call's payload must not travel in errors.
    code = exc.code() if isinstance(exc, grpc.Call) else None
    name = code.name if code is not None else "UNKNOWN"
    if verb == "Decrypt" and code is grpc.StatusCode.INVALID_ARGUMENT:
        # The ciphertext does not open for this bot_ref/kind (e.g. replayed under another sender).
        return SecretRejected(f"vault {verb} failed: {name}")
    return VaultUnavailable(f"vault {verb} failed: {name}")
