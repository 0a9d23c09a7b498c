"""Who may call which verb. Identity comes from the caller's mTLS certificate, never from a request field: its one
SAN URI ``spiffe://tgm/<name>``; anything else (and a plaintext peer) is ``anonymous`` and may do nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import grpc

from tgm.domain.ports import DecryptPurpose, SecretKind
from tgm.grpc_runtime.authorization import caller_identity


class Verb(StrEnum):
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    REWRAP = "rewrap"
    ROTATE_KEY = "rotate_key"
    KEY_STATUS = "key_status"
    RETIRE_KEY_VERSION = "retire_key_version"


@dataclass(frozen=True)
class Grant:
    """One permitted use: a verb, for secret verbs the kind of secret, for Decrypt also the purpose."""

    verb: Verb
    kind: SecretKind | None = None
    purpose: DecryptPurpose | None = None


@dataclass(frozen=True)
class Caller:
    identity: str


def caller_of(context: grpc.ServicerContext) -> Caller:
    """The caller is the ``spiffe://tgm/<name>`` SAN URI of the verified peer certificate: one reading of the
    certificate for every service (src/tgm/grpc_runtime/authorization.py)."""
    return Caller(caller_identity(context))


class Policy:
    """A caller may do only what it is explicitly granted — (verb, kind[, purpose]); unknown callers get nothing."""

    def __init__(self, grants: Mapping[str, Iterable[Grant]]) -> None:
        self._grants = {identity: frozenset(granted) for identity, granted in grants.items()}

    def may_use(self, caller: Caller, verb: Verb) -> bool:
        """Whether the caller has any grant for `verb`: checked first, before the request is even looked at."""
        return any(grant.verb is verb for grant in self._grants.get(caller.identity, ()))

    def allows(self, caller: Caller, grant: Grant) -> bool:
        return grant in self._grants.get(caller.identity, frozenset())


_BOT, _TEXT = SecretKind.BOT_TOKEN, SecretKind.INBOUND_TEXT
GATEWAY = frozenset({Grant(Verb.ENCRYPT, _TEXT)})
BOTREGISTRY = frozenset(
    {
        Grant(Verb.ENCRYPT, _BOT),
        Grant(Verb.DECRYPT, _BOT, DecryptPurpose.MANAGE),
        Grant(Verb.DECRYPT, _TEXT, DecryptPurpose.MANAGE),
        Grant(Verb.REWRAP, _BOT),
    }
)
DISPATCHER = frozenset({Grant(Verb.DECRYPT, _BOT, DecryptPurpose.SEND)})
OPERATOR = frozenset({Grant(Verb.ROTATE_KEY), Grant(Verb.KEY_STATUS), Grant(Verb.RETIRE_KEY_VERSION)})


def default_policy() -> Policy:
    """DESIGN §4. `embedded` is tgm.apps.embedded: gateway and dispatcher in one process, so the union of both."""
    return Policy(
        {
            "gateway": GATEWAY,
            "botregistry": BOTREGISTRY,
            "dispatcher": DISPATCHER,
            "embedded": GATEWAY | DISPATCHER,
            "operator": OPERATOR,
        }
    )
