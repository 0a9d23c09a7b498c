"""VaultService over gRPC: identify → authorize → validate → act → audit. Never logs plaintext or keys.

Authorization comes before validation: a caller with no grant for the verb gets PERMISSION_DENIED whatever it
sent (a malformed request from a stranger is a denial, not an input error). Then the kind and purpose are
parsed and the exact (verb, kind[, purpose]) grant is checked; only then are bot_ref, sizes and ciphertext
validated.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import grpc

from tgm.domain.ports import SecretKind
from tgm.grpc_runtime.channels import valid_request_id
from tgm.observability.logging import log_extra, request_id_var
from tgm.observability.metrics import VAULT_CALLS
from tgm.services.vault.audit import AuditLog
from tgm.services.vault.crypto import HEADER_BYTES, TAG_BYTES, Cipher, CiphertextRejected, UnknownKeyVersion
from tgm.services.vault.keystore import KeyStore, KeyStoreError
from tgm.services.vault.policy import Caller, Grant, Policy, Verb, caller_of
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc
from tgm.vault_client import wire

SERVICE_NAME = vault_pb2.DESCRIPTOR.services_by_name["VaultService"].full_name
MAX_CIPHERTEXT_BYTES = HEADER_BYTES + wire.MAX_PLAINTEXT_BYTES + TAG_BYTES


# Every call is also one record on this logger (stderr JSON, shipped off the host) carrying the audit line's
# anchor (audit_seq, audit_hash): the hash-chained file is the `AuditLog`, the log stream anchors its tail.
audit_log = logging.getLogger(f"{__name__}.audit")
log = logging.getLogger(__name__)
Request = TypeVar("Request")
Response = TypeVar("Response")
T = TypeVar("T")
Record = dict[str, object]
# A verb's body, and the gRPC method `_audited` makes of it.
Act = Callable[["VaultServicer", Request, Caller, Record], Response]
Method = Callable[["VaultServicer", Request, grpc.ServicerContext], Response]


@dataclass
class _Refused(Exception):
    code: grpc.StatusCode
    details: str
    outcome: str  # the audit line's


def _invalid(details: str, outcome: str = "invalid_argument") -> _Refused:
    return _Refused(grpc.StatusCode.INVALID_ARGUMENT, details, outcome)


def _denied(details: str) -> _Refused:
    return _Refused(grpc.StatusCode.PERMISSION_DENIED, details, "denied")


def _valid_ciphertext(ciphertext: bytes, record: Record) -> bytes:
    if not ciphertext or len(ciphertext) > MAX_CIPHERTEXT_BYTES:
        raise _invalid(f"ciphertext must be 1..{MAX_CIPHERTEXT_BYTES} bytes")
    record["key_version"] = Cipher.key_version_of(ciphertext)
    return ciphertext


def _audited(verb: Verb) -> Callable[[Act[Request, Response]], Method[Request, Response]]:
    """Makes `act(self, request, caller, record)` the gRPC method of `verb`: every call goes through `_call`."""

    def decorate(act: Act[Request, Response]) -> Method[Request, Response]:
        @functools.wraps(act)
        def method(self: VaultServicer, request: Request, context: grpc.ServicerContext) -> Response:
            return self._call(verb, context, lambda caller, record: act(self, request, caller, record))

        return method

    return decorate


class VaultServicer(vault_pb2_grpc.VaultServiceServicer):
    def __init__(self, cipher: Cipher, policy: Policy, keys: KeyStore, audit: AuditLog) -> None:
        self._cipher = cipher
        self._policy = policy
        self._keys = keys
        self._audit = audit

    @_audited(Verb.ENCRYPT)
    def Encrypt(self, request: vault_pb2.EncryptRequest, caller: Caller, record: Record) -> vault_pb2.EncryptResponse:
        bot_ref, kind = self._admit(caller, record, Verb.ENCRYPT, request.bot_ref, request.kind)
        if len(request.plaintext) > wire.MAX_PLAINTEXT_BYTES:
            raise _invalid(f"plaintext must be at most {wire.MAX_PLAINTEXT_BYTES} bytes")
        sealed = self._cipher.seal(bot_ref, kind, request.plaintext)
        record["key_version"] = sealed.key_version
        return vault_pb2.EncryptResponse(ciphertext=sealed.ciphertext, key_version=sealed.key_version)

    @_audited(Verb.DECRYPT)
    def Decrypt(self, request: vault_pb2.DecryptRequest, caller: Caller, record: Record) -> vault_pb2.DecryptResponse:
        bot_ref, kind = self._admit(caller, record, Verb.DECRYPT, request.bot_ref, request.kind, request.purpose)
        ciphertext = _valid_ciphertext(request.ciphertext, record)
        return vault_pb2.DecryptResponse(plaintext=self._open(bot_ref, kind, ciphertext))

    @_audited(Verb.REWRAP)
    def Rewrap(self, request: vault_pb2.RewrapRequest, caller: Caller, record: Record) -> vault_pb2.RewrapResponse:
        bot_ref, kind = self._admit(caller, record, Verb.REWRAP, request.bot_ref, request.kind)
        ciphertext = _valid_ciphertext(request.ciphertext, record)
        plaintext = self._open(bot_ref, kind, ciphertext)  # stays in this frame
        version = Cipher.key_version_of(ciphertext) or 0
        if version == self._cipher.primary_version:
            record["new_key_version"] = version
            return vault_pb2.RewrapResponse(ciphertext=ciphertext, key_version=version)
        sealed = self._cipher.seal(bot_ref, kind, plaintext)
        record["new_key_version"] = sealed.key_version
        return vault_pb2.RewrapResponse(ciphertext=sealed.ciphertext, key_version=sealed.key_version, changed=True)

    @_audited(Verb.ROTATE_KEY)
    def RotateKey(
        self, request: vault_pb2.RotateKeyRequest, caller: Caller, record: Record
    ) -> vault_pb2.RotateKeyResponse:
        version = self._key_op(caller, Verb.ROTATE_KEY, lambda keys: keys.rotate())
        record["key_version"] = version
        return vault_pb2.RotateKeyResponse(primary_version=version)

    @_audited(Verb.KEY_STATUS)
    def KeyStatus(
        self, request: vault_pb2.KeyStatusRequest, caller: Caller, record: Record
    ) -> vault_pb2.KeyStatusResponse:
        status = self._key_op(caller, Verb.KEY_STATUS, lambda keys: keys.status())
        versions = [(v.version, status.ages[v.version], v.retired) for v in status.versions]
        return wire.key_status_response(status.primary_version, versions, status.rotation_due, status.rotation_period)

    @_audited(Verb.RETIRE_KEY_VERSION)
    def RetireKeyVersion(
        self, request: vault_pb2.RetireKeyVersionRequest, caller: Caller, record: Record
    ) -> vault_pb2.RetireKeyVersionResponse:
        record["key_version"] = request.version
        self._key_op(caller, Verb.RETIRE_KEY_VERSION, lambda keys: keys.retire(request.version))
        return vault_pb2.RetireKeyVersionResponse()

    # ------------------------------------------------------------------------------------------ plumbing

    def _call(self, verb: Verb, context: grpc.ServicerContext, act: Callable[[Caller, Record], Response]) -> Response:
        caller = caller_of(context)
        request_id = valid_request_id(request_id_var.get())
        record: Record = {"verb": verb.value, "caller": caller.identity, "request_id": request_id}
        if self._audit.broken is not None:
            # Fail closed: with no durable record possible, no key is used at all (the caller retries elsewhere).
            log.error("vault call refused: audit log broken", **log_extra(verb=verb.value))
            context.abort(grpc.StatusCode.UNAVAILABLE, "the vault's audit log is broken")
        try:
            response = act(caller, record)
            self._record("ok", record)
        except _Refused as refused:
            self._record(refused.outcome, record, level=logging.WARNING)
            context.abort(refused.code, refused.details)
        except Exception as exc:
            self._internal_error(context, record, exc)
        return response

    def _admit(
        self,
        caller: Caller,
        record: Record,
        verb: Verb,
        bot_ref: str,
        kind: vault_pb2.SecretKind.ValueType,
        purpose: vault_pb2.Purpose.ValueType | None = None,
    ) -> tuple[str, SecretKind]:
        """A secret verb's checks in the module doc's order; the well-formed labels go into the audit record first,
        before anything can refuse the call."""
        secret_kind = wire.KIND_OF.get(kind)  # None: UNSPECIFIED or unknown (so is the purpose's)
        reason = None if purpose is None else wire.PURPOSE_OF.get(purpose)
        if wire.bot_ref_ok(bot_ref):
            record["bot"] = bot_ref
        if secret_kind is not None:
            record["kind"] = secret_kind.value
        if reason is not None:
            record["purpose"] = reason.value
        if not self._policy.may_use(caller, verb):
            raise _denied("caller may not use this verb")
        if secret_kind is None:
            raise _invalid("kind must be a known SecretKind, not UNSPECIFIED")
        if purpose is not None and reason is None:
            raise _invalid("purpose must be a known Purpose, not UNSPECIFIED")
        if not self._policy.allows(caller, Grant(verb, secret_kind, reason)):
            raise _denied("caller may not use this verb for this secret")
        if not wire.bot_ref_ok(bot_ref):
            raise _invalid(f"bot_ref must be 1..{wire.MAX_BOT_REF_CHARS} printable characters")
        return bot_ref, secret_kind

    def _open(self, bot_ref: str, kind: SecretKind, ciphertext: bytes) -> bytes:
        try:
            return self._cipher.open(bot_ref, kind, ciphertext)
        except UnknownKeyVersion:
            details = "ciphertext was sealed with a key version this vault does not hold"
            raise _invalid(details, "unknown_key_version") from None
        except CiphertextRejected:
            raise _invalid("ciphertext does not open for this bot and kind", "rejected") from None

    def _key_op(self, caller: Caller, verb: Verb, op: Callable[[KeyStore], T]) -> T:
        """An operator verb: its grant, then `op` on the key store (a KeyStoreError, e.g. retiring the primary, is a
        refusal; its message holds no key material)."""
        if not self._policy.allows(caller, Grant(verb)):
            raise _denied("caller may not use this verb for this secret")
        try:
            return op(self._keys)
        except KeyStoreError as exc:
            raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc), "failed_precondition") from None

    def _internal_error(self, context: grpc.ServicerContext, record: Record, exc: Exception) -> NoReturn:
        # The type only, no message or traceback: those could in theory carry request material.
        log.error("vault call failed unexpectedly", **log_extra(verb=record.get("verb"), error=type(exc).__name__))
        try:
            self._record("internal_error", record, level=logging.ERROR)
        except Exception as audit_exc:
            log.error("vault audit write failed", **log_extra(error=type(audit_exc).__name__))
        context.abort(grpc.StatusCode.INTERNAL, "internal vault error")

    def _record(self, outcome: str, record: Record, level: int = logging.INFO) -> None:
        record["outcome"] = outcome
        line = self._audit.append(record)  # a failing audit write fails the call (INTERNAL): no unrecorded calls
        audit_log.log(level, "vault call", **log_extra(**record, audit_seq=line.seq, audit_hash=line.hash))
        VAULT_CALLS.labels(str(record.get("verb")), str(record.get("caller")), outcome).inc()
