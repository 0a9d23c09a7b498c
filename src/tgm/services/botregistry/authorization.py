"""Which caller (mTLS certificate identity) may call which registry method.

Written as permissions, one per method, except RegisterBot, which is two: with a plaintext token (operators and
test/devstack tooling only) or with a token the gateway sealed (the dispatcher, for the manager bot), and
RecordEvent, which is one per event kind a caller may add to the trail: the dispatcher its refused callbacks and its
admins' broadcasts and inbox blocks (their role written by the registry), the operator its key rotations (the
registry records its own admin actions itself; nobody may forge those).
ListEvents (reading the trail) is the operator's. Unknown identities, and plaintext peers, get nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tgm.domain.events import ADMIN_WORK_KINDS
from tgm.registry.v1 import registry_pb2

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
REGISTER_WITH_TOKEN = "RegisterBot:token"  # noqa: S105 - a permission name
REGISTER_SEALED = "RegisterBot:sealed"
# The event kinds another process may add to the trail (src/tgm/domain/events.py EventKind values).
RECORD_CALLBACK_REFUSED = "RecordEvent:callback_refused"
RECORD_KEY_ROTATED = "RecordEvent:key_rotated"
RECORD_OTHER = "RecordEvent:other"  # granted to nobody: every other kind is the registry's own to record
# Broadcasts and inbox blocks (issue 15): the admins' work the dispatcher does; the registry adds the actor's role.
RECORD_ADMIN_WORK = frozenset(f"RecordEvent:{kind.value}" for kind in ADMIN_WORK_KINDS)

ALL_METHODS = frozenset(registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].methods_by_name)
ALL_PERMISSIONS = frozenset(
    (ALL_METHODS - {"RegisterBot", "RecordEvent"})
    | {REGISTER_WITH_TOKEN, REGISTER_SEALED, RECORD_CALLBACK_REFUSED, RECORD_KEY_ROTATED}
    | RECORD_ADMIN_WORK
)

# GetBotVersions: the gateway drops a cached route within a second of its bot changing (a rotated secret).
GATEWAY = frozenset({"GetRoute", "GetBotVersions"})
DISPATCHER = frozenset(
    {
        "GetBot",
        "GetBotVersions",
        "ListBots",
        "GetBotDetails",
        "SetBotStatus",
        "RotateWebhookSecret",
        "DeleteBot",
        "UpdateBotSettings",
        "RecordInteraction",
        "RecordInteractions",
        "GetSubscriberStats",
        "MarkSubscribersBlocked",
        "ListSubscribers",
        "RegisterManagedBot",
        # co-admins (issue 15): each checks the actor's role itself (src/tgm/domain/bot_roles.py)
        "CreateInvite",
        "RedeemInvite",
        "ListBotAdmins",
        "RevokeBotAdmin",
        "RevokeInvite",
        "LeaveBot",
        "GetBotTeam",
        REGISTER_SEALED,
        RECORD_CALLBACK_REFUSED,
    }
    | RECORD_ADMIN_WORK
)
OPERATOR = ALL_PERMISSIONS


def permission_for(method: str, request: Any) -> str:
    if method == "RegisterBot":
        sealed = isinstance(request, registry_pb2.RegisterBotRequest) and (
            request.WhichOneof("credential") == "sealed_token"
        )
        return REGISTER_SEALED if sealed else REGISTER_WITH_TOKEN
    if method == "RecordEvent":
        kind = request.kind if isinstance(request, registry_pb2.RecordEventRequest) else ""
        wanted = f"RecordEvent:{kind}"
        known = wanted in (RECORD_CALLBACK_REFUSED, RECORD_KEY_ROTATED) or wanted in RECORD_ADMIN_WORK
        return wanted if known else RECORD_OTHER
    return method


class RegistryPolicy:
    def __init__(self, grants: Mapping[str, Iterable[str]]) -> None:
        self._grants = {identity: frozenset(granted) for identity, granted in grants.items()}

    def allows(self, identity: str, method: str, request: Any) -> bool:
        return permission_for(method, request) in self._grants.get(identity, frozenset())

    def __repr__(self) -> str:
        return f"RegistryPolicy({ {k: sorted(v) for k, v in sorted(self._grants.items())} })"


def default_policy() -> RegistryPolicy:
    """`embedded` is tgm.apps.embedded: gateway and dispatcher in one process, so the union of both."""
    return RegistryPolicy(
        {
            "gateway": GATEWAY,
            "dispatcher": DISPATCHER,
            "embedded": GATEWAY | DISPATCHER,
            "operator": OPERATOR,
        }
    )
