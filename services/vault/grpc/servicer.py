"""VaultService over gRPC: validate → authorize → seal/open → record. Never logs plaintext or keys."""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from libs.domain.ports import DecryptPurpose, SecretKind
from libs.observability.logging import log_extra
from services.vault.crypto import HEADER_BYTES, TAG_BYTES, Cipher, CiphertextRejected, UnknownKeyVersion
from services.vault.policy import Caller, CallerResolver, Policy, Verb
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc

SERVICE_NAME = vault_pb2.DESCRIPTOR.services_by_name["VaultService"].full_name
MAX_BOT_REF_CHARS = 64
MAX_PLAINTEXT_BYTES = 4096
MAX_CIPHERTEXT_BYTES = HEADER_BYTES + MAX_PLAINTEXT_BYTES + TAG_BYTES

_KINDS = {
    vault_pb2.SECRET_KIND_BOT_TOKEN: SecretKind.BOT_TOKEN,
    vault_pb2.SECRET_KIND_INBOUND_TEXT: SecretKind.INBOUND_TEXT,
}
_PURPOSES = {
    vault_pb2.PURPOSE_MANAGE: (DecryptPurpose.MANAGE, Verb.DECRYPT_MANAGE),
    vault_pb2.PURPOSE_SEND: (DecryptPurpose.SEND, Verb.DECRYPT_SEND),
}

# One logger for every call: the seam where issue 4's hash-chained audit log plugs in.
audit_log = logging.getLogger("services.vault.audit")
log = logging.getLogger(__name__)


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, outcome: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.outcome = outcome


def _invalid(details: str) -> _Refused:
    return _Refused(grpc.StatusCode.INVALID_ARGUMENT, details, "invalid_argument")


def _valid_bot_ref(bot_ref: str) -> str:
    if not bot_ref or len(bot_ref) > MAX_BOT_REF_CHARS or not bot_ref.isprintable():
        raise _invalid(f"bot_ref must be 1..{MAX_BOT_REF_CHARS} printable characters")
    return bot_ref


def _valid_kind(kind: vault_pb2.SecretKind.ValueType) -> SecretKind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise _invalid("kind must be a known SecretKind, not UNSPECIFIED") from None


class VaultServicer(vault_pb2_grpc.VaultServiceServicer):
    def __init__(self, cipher: Cipher, policy: Policy, callers: CallerResolver) -> None:
        self._cipher = cipher
        self._policy = policy
        self._callers = callers

    def Encrypt(self, request: vault_pb2.EncryptRequest, context: grpc.ServicerContext) -> vault_pb2.EncryptResponse:
        caller = self._callers.caller_of(context)
        record: dict[str, object] = {"verb": Verb.ENCRYPT.value, "caller": caller.identity}
        try:
            bot_ref = _valid_bot_ref(request.bot_ref)
            record["bot_ref"] = bot_ref
            kind = _valid_kind(request.kind)
            record["kind"] = kind.value
            if len(request.plaintext) > MAX_PLAINTEXT_BYTES:
                raise _invalid(f"plaintext must be at most {MAX_PLAINTEXT_BYTES} bytes")
            self._authorize(caller, Verb.ENCRYPT)
            sealed = self._cipher.seal(bot_ref, kind, request.plaintext)
        except _Refused as refused:
            self._abort(context, refused, record)
        except Exception as exc:
            self._internal_error(context, record, exc)
        record["key_version"] = sealed.key_version
        self._record("ok", record)
        return vault_pb2.EncryptResponse(ciphertext=sealed.ciphertext, key_version=sealed.key_version)

    def Decrypt(self, request: vault_pb2.DecryptRequest, context: grpc.ServicerContext) -> vault_pb2.DecryptResponse:
        caller = self._callers.caller_of(context)
        record: dict[str, object] = {"verb": "decrypt", "caller": caller.identity}
        try:
            bot_ref = _valid_bot_ref(request.bot_ref)
            record["bot_ref"] = bot_ref
            kind = _valid_kind(request.kind)
            record["kind"] = kind.value
            try:
                purpose, verb = _PURPOSES[request.purpose]
            except KeyError:
                raise _invalid("purpose must be a known Purpose, not UNSPECIFIED") from None
            record["purpose"] = purpose.value
            if not request.ciphertext or len(request.ciphertext) > MAX_CIPHERTEXT_BYTES:
                raise _invalid(f"ciphertext must be 1..{MAX_CIPHERTEXT_BYTES} bytes")
            self._authorize(caller, verb)
            record["key_version"] = Cipher.key_version_of(request.ciphertext)
            try:
                plaintext = self._cipher.open(bot_ref, kind, request.ciphertext)
            except UnknownKeyVersion:
                raise _Refused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "ciphertext was sealed with a key version this vault does not hold",
                    "unknown_key_version",
                ) from None
            except CiphertextRejected:
                raise _Refused(
                    grpc.StatusCode.INVALID_ARGUMENT, "ciphertext does not open for this bot and kind", "rejected"
                ) from None
        except _Refused as refused:
            self._abort(context, refused, record)
        except Exception as exc:
            self._internal_error(context, record, exc)
        self._record("ok", record)
        return vault_pb2.DecryptResponse(plaintext=plaintext)

    def _authorize(self, caller: Caller, verb: Verb) -> None:
        if not self._policy.allows(caller, verb):
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED, "caller may not use this verb", "denied")

    def _abort(self, context: grpc.ServicerContext, refused: _Refused, record: dict[str, object]) -> NoReturn:
        self._record(refused.outcome, record, level=logging.WARNING)
        context.abort(refused.code, refused.details)

    def _internal_error(self, context: grpc.ServicerContext, record: dict[str, object], exc: Exception) -> NoReturn:
        # The type only, no message or traceback: those could in theory carry request material.
        log.error("vault call failed unexpectedly", **log_extra(verb=record.get("verb"), error=type(exc).__name__))
        self._record("internal_error", record, level=logging.ERROR)
        context.abort(grpc.StatusCode.INTERNAL, "internal vault error")

    @staticmethod
    def _record(outcome: str, record: dict[str, object], level: int = logging.INFO) -> None:
        audit_log.log(level, "vault call", **log_extra(outcome=outcome, **record))
