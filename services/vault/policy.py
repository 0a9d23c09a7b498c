"""Who may call which verb. The seam issue 4 (mTLS identities) plugs into.

Today there is no authentication: a caller on a loopback (or unix-socket) peer is the identity
``unauthenticated-loopback`` and may do everything the vault offers; any other peer is
``unauthenticated-remote`` and may do nothing unless the operator opts in with
``VAULT_UNAUTHENTICATED_PEERS=any`` (containers on a private network, until mTLS). Issue 4 replaces
`PeerCallerResolver` with one that reads the mTLS peer certificate and `default_policy` with the
per-service grants of DESIGN §4 (gateway: encrypt; registry: encrypt, decrypt:manage; dispatcher: decrypt:send).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import grpc


class Verb(StrEnum):
    ENCRYPT = "encrypt"
    DECRYPT_MANAGE = "decrypt:manage"
    DECRYPT_SEND = "decrypt:send"


UNAUTHENTICATED_LOOPBACK = "unauthenticated-loopback"
UNAUTHENTICATED_REMOTE = "unauthenticated-remote"


@dataclass(frozen=True)
class Caller:
    identity: str


class CallerResolver(Protocol):
    def caller_of(self, context: grpc.ServicerContext) -> Caller: ...


_LOOPBACK_PEER_PREFIXES = ("ipv4:127.", "ipv6:[::1]:", "ipv6:[::ffff:127.", "unix:", "unix-abstract:")


class PeerCallerResolver:
    """No authentication yet: loopback peers are trusted, everyone else is not."""

    def caller_of(self, context: grpc.ServicerContext) -> Caller:
        peer = context.peer() or ""
        if peer.startswith(_LOOPBACK_PEER_PREFIXES):
            return Caller(UNAUTHENTICATED_LOOPBACK)
        return Caller(UNAUTHENTICATED_REMOTE)


class Policy:
    """A caller may use a verb only if explicitly granted; unknown callers get nothing."""

    def __init__(self, grants: Mapping[str, frozenset[Verb]]) -> None:
        self._grants = {identity: frozenset(verbs) for identity, verbs in grants.items()}

    def allows(self, caller: Caller, verb: Verb) -> bool:
        return verb in self._grants.get(caller.identity, frozenset())

    def __repr__(self) -> str:
        shown = {identity: sorted(verbs) for identity, verbs in sorted(self._grants.items())}
        return f"Policy({shown})"


def default_policy(allow_remote_unauthenticated: bool = False) -> Policy:
    grants = {UNAUTHENTICATED_LOOPBACK: frozenset(Verb)}
    if allow_remote_unauthenticated:
        grants[UNAUTHENTICATED_REMOTE] = frozenset(Verb)
    return Policy(grants)
