"""VaultService over gRPC: identify → authorize → validate → act → audit. Never logs plaintext or keys.

Authorization comes before validation: a caller with no grant for the verb gets PERMISSION_DENIED whatever it
sent (a malformed request from a stranger is a denial, not an input error). Then the kind and purpose are
parsed and the exact (verb, kind[, purpose]) grant is checked; only then are bot_ref, sizes and ciphertext
validated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn, Protocol, TypeVar

import grpc

from libs.domain.ports import DecryptPurpose, SecretKind
from libs.grpc_runtime.channels import valid_request_id
from libs.observability.logging import log_extra, request_id_var
from libs.observability.metrics import VAULT_CALLS
from libs.vault_client.wire import KINDS, MAX_BOT_REF_CHARS, MAX_PLAINTEXT_BYTES, PURPOSES, bot_ref_ok
from services.vault.audit import Anchor
from services.vault.crypto import HEADER_BYTES, TAG_BYTES, Cipher, CiphertextRejected, UnknownKeyVersion
from services.vault.keystore import KeyStore, KeyStoreError
from services.vault.policy import Caller, CallerResolver, Grant, Policy, Verb
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc

SERVICE_NAME = vault_pb2.DESCRIPTOR.services_by_name["VaultService"].full_name
MAX_CIPHERTEXT_BYTES = HEADER_BYTES + MAX_PLAINTEXT_BYTES + TAG_BYTES

_KINDS = {wire: kind for kind, wire in KINDS.items()}
_PURPOSES = {wire: purpose for purpose, wire in PURPOSES.items()}

# Every call is also one record on this logger (stderr JSON, shipped off the host) carrying the audit line's
# anchor (audit_seq, audit_hash): the hash-chained file is the `AuditSink`, the log stream anchors its tail.
audit_log = logging.getLogger("services.vault.audit")
log = logging.getLogger(__name__)
T = TypeVar("T")


class AuditSink(Protocol):
    def append(self, record: dict[str, object]) -> Anchor: ...

    @property
    def broken(self) -> str | None:
        """Why the sink refuses appends (None while it works): the vault then serves no call at all."""
        ...


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, outcome: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.outcome = outcome


def _invalid(details: str) -> _Refused:
    return _Refused(grpc.StatusCode.INVALID_ARGUMENT, details, "invalid_argument")


def _note(
    record: dict[str, object],
    bot_ref: str,
    kind: vault_pb2.SecretKind.ValueType | None = None,
    purpose: vault_pb2.Purpose.ValueType | None = None,
) -> None:
    """Puts the well-formed request labels into the audit record before anything can refuse the call."""
    if bot_ref_ok(bot_ref):
        record["bot"] = bot_ref
    if kind is not None and kind in _KINDS:
        record["kind"] = _KINDS[kind].value
    if purpose is not None and purpose in _PURPOSES:
        record["purpose"] = _PURPOSES[purpose].value


def _valid_bot_ref(bot_ref: str) -> str:
    if not bot_ref_ok(bot_ref):
        raise _invalid(f"bot_ref must be 1..{MAX_BOT_REF_CHARS} printable characters")
    return bot_ref


def _valid_kind(kind: vault_pb2.SecretKind.ValueType) -> SecretKind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise _invalid("kind must be a known SecretKind, not UNSPECIFIED") from None


def _valid_purpose(purpose: vault_pb2.Purpose.ValueType) -> DecryptPurpose:
    try:
        return _PURPOSES[purpose]
    except KeyError:
        raise _invalid("purpose must be a known Purpose, not UNSPECIFIED") from None


def _valid_ciphertext(ciphertext: bytes, record: dict[str, object]) -> bytes:
    if not ciphertext or len(ciphertext) > MAX_CIPHERTEXT_BYTES:
        raise _invalid(f"ciphertext must be 1..{MAX_CIPHERTEXT_BYTES} bytes")
    record["key_version"] = Cipher.key_version_of(ciphertext)
    return ciphertext


class VaultServicer(vault_pb2_grpc.VaultServiceServicer):
    def __init__(
        self,
        cipher: Cipher,
        policy: Policy,
        callers: CallerResolver,
        keys: KeyStore | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self._cipher = cipher
        self._policy = policy
        self._callers = callers
        self._keys = keys
        self._audit = audit

    def Encrypt(self, request: vault_pb2.EncryptRequest, context: grpc.ServicerContext) -> vault_pb2.EncryptResponse:
        def act(caller: Caller, record: dict[str, object]) -> vault_pb2.EncryptResponse:
            _note(record, request.bot_ref, request.kind)
            self._authorize_verb(caller, Verb.ENCRYPT)
            kind = _valid_kind(request.kind)
            self._authorize(caller, Grant(Verb.ENCRYPT, kind))
            bot_ref = _valid_bot_ref(request.bot_ref)
            if len(request.plaintext) > MAX_PLAINTEXT_BYTES:
                raise _invalid(f"plaintext must be at most {MAX_PLAINTEXT_BYTES} bytes")
            sealed = self._cipher.seal(bot_ref, kind, request.plaintext)
            record["key_version"] = sealed.key_version
            return vault_pb2.EncryptResponse(ciphertext=sealed.ciphertext, key_version=sealed.key_version)

        return self._call("encrypt", context, act)

    def Decrypt(self, request: vault_pb2.DecryptRequest, context: grpc.ServicerContext) -> vault_pb2.DecryptResponse:
        def act(caller: Caller, record: dict[str, object]) -> vault_pb2.DecryptResponse:
            _note(record, request.bot_ref, request.kind, request.purpose)
            self._authorize_verb(caller, Verb.DECRYPT)
            kind, purpose = _valid_kind(request.kind), _valid_purpose(request.purpose)
            self._authorize(caller, Grant(Verb.DECRYPT, kind, purpose))
            bot_ref = _valid_bot_ref(request.bot_ref)
            ciphertext = _valid_ciphertext(request.ciphertext, record)
            return vault_pb2.DecryptResponse(plaintext=self._open(bot_ref, kind, ciphertext))

        return self._call("decrypt", context, act)

    def Rewrap(self, request: vault_pb2.RewrapRequest, context: grpc.ServicerContext) -> vault_pb2.RewrapResponse:
        def act(caller: Caller, record: dict[str, object]) -> vault_pb2.RewrapResponse:
            _note(record, request.bot_ref, request.kind)
            self._authorize_verb(caller, Verb.REWRAP)
            kind = _valid_kind(request.kind)
            self._authorize(caller, Grant(Verb.REWRAP, kind))
            bot_ref = _valid_bot_ref(request.bot_ref)
            ciphertext = _valid_ciphertext(request.ciphertext, record)
            plaintext = self._open(bot_ref, kind, ciphertext)  # stays in this frame
            version = Cipher.key_version_of(ciphertext) or 0
            if version == self._cipher.primary_version:
                record["new_key_version"] = version
                return vault_pb2.RewrapResponse(ciphertext=ciphertext, key_version=version)
            sealed = self._cipher.seal(bot_ref, kind, plaintext)
            record["new_key_version"] = sealed.key_version
            return vault_pb2.RewrapResponse(ciphertext=sealed.ciphertext, key_version=sealed.key_version, changed=True)

        return self._call("rewrap", context, act)

    def RotateKey(
        self, request: vault_pb2.RotateKeyRequest, context: grpc.ServicerContext
    ) -> vault_pb2.RotateKeyResponse:
        def act(caller: Caller, record: dict[str, object]) -> vault_pb2.RotateKeyResponse:
            self._authorize(caller, Grant(Verb.ROTATE_KEY))
            version = self._key_op(lambda keys: keys.rotate())
            record["key_version"] = version
            return vault_pb2.RotateKeyResponse(primary_version=version)

        return self._call("rotate_key", context, act)

    def KeyStatus(
        self, request: vault_pb2.KeyStatusRequest, context: grpc.ServicerContext
    ) -> vault_pb2.KeyStatusResponse:
        def act(caller: Caller, record: dict[str, object]) -> vault_pb2.KeyStatusResponse:
            self._authorize(caller, Grant(Verb.KEY_STATUS))
            status = self._key_op(lambda keys: keys.status())
            return vault_pb2.KeyStatusResponse(
                primary_version=status.primary_version,
                versions=[
                    vault_pb2.KeyVersionStatus(
                        version=v.version,
                        age_seconds=int(status.ages[v.version].total_seconds()),
                        primary=v.version == status.primary_version,
                        retired=v.retired,
                    )
                    for v in status.versions
                ],
                rotation_due=status.rotation_due,
                rotation_period_seconds=int(status.rotation_period.total_seconds()),
            )

        return self._call("key_status", context, act)

    def RetireKeyVersion(
        self, request: vault_pb2.RetireKeyVersionRequest, context: grpc.ServicerContext
    ) -> vault_pb2.RetireKeyVersionResponse:
        def act(caller: Caller, record: dict[str, object]) -> vault_pb2.RetireKeyVersionResponse:
            record["key_version"] = request.version
            self._authorize(caller, Grant(Verb.RETIRE_KEY_VERSION))
            self._key_op(lambda keys: keys.retire(request.version))
            return vault_pb2.RetireKeyVersionResponse()

        return self._call("retire_key_version", context, act)

    # ------------------------------------------------------------------------------------------ plumbing

    def _call(self, verb: str, context: grpc.ServicerContext, act: Callable[[Caller, dict[str, object]], T]) -> T:
        caller = self._callers.caller_of(context)
        request_id = valid_request_id(request_id_var.get())
        record: dict[str, object] = {"verb": verb, "caller": caller.identity, "request_id": request_id}
        if self._audit is not None and self._audit.broken is not None:
            # Fail closed: with no durable record possible, no key is used at all (the caller retries elsewhere).
            log.error("vault call refused: audit log broken", **log_extra(verb=verb))
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

    def _open(self, bot_ref: str, kind: SecretKind, ciphertext: bytes) -> bytes:
        try:
            return self._cipher.open(bot_ref, kind, ciphertext)
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

    def _key_op(self, op: Callable[[KeyStore], T]) -> T:
        if self._keys is None:
            raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, "this vault has no key store", "failed_precondition")
        try:
            return op(self._keys)
        except KeyStoreError as exc:
            raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc), "failed_precondition") from None

    def _authorize_verb(self, caller: Caller, verb: Verb) -> None:
        if not self._policy.may_use(caller, verb):
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED, "caller may not use this verb", "denied")

    def _authorize(self, caller: Caller, grant: Grant) -> None:
        if not self._policy.allows(caller, grant):
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED, "caller may not use this verb for this secret", "denied")

    def _internal_error(self, context: grpc.ServicerContext, record: dict[str, object], exc: Exception) -> NoReturn:
        # The type only, no message or traceback: those could in theory carry request material.
        log.error("vault call failed unexpectedly", **log_extra(verb=record.get("verb"), error=type(exc).__name__))
        try:
            self._record("internal_error", record, level=logging.ERROR)
        except Exception as audit_exc:
            log.error("vault audit write failed", **log_extra(error=type(audit_exc).__name__))
        context.abort(grpc.StatusCode.INTERNAL, "internal vault error")

    def _record(self, outcome: str, record: dict[str, object], level: int = logging.INFO) -> None:
        record["outcome"] = outcome
        anchor: dict[str, object] = {}
        if self._audit is not None:
            line = self._audit.append(record)  # a failing audit write fails the call (INTERNAL): no unrecorded calls
            anchor = {"audit_seq": line.seq, "audit_hash": line.hash}
        audit_log.log(level, "vault call", **log_extra(**record, **anchor))
        VAULT_CALLS.labels(str(record.get("verb")), str(record.get("caller")), outcome).inc()
