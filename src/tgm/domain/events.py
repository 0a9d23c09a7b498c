"""The event trail (issue 9): admin actions and security events, kept for a retention period.

An event says when, what (`EventKind`), who (`actor`: ``telegram:<user id>`` or a service/operator identity such
as ``operator``), which bot (or none), how it ended (`outcome`) and a few small details. Details never hold a
secret: no token, ciphertext, secret hash or message text — `Event` refuses keys that name one and token-shaped
values, and keeps values short (an id, a reason code, the kind of a settings change).

This trail is an operator's record, not the vault's audit log: the vault's rule "a failed audit write refuses the
call" (src/tgm/services/vault/audit.py) does not apply here. An action whose event cannot be stored still happens; the
failure is logged. Key rotations live in the vault's own tamper-evident audit log; `tgm keys rotate` adds a
`key_rotated` line here too, for one place to read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from tgm.domain.ports import Clock
from tgm.domain.redaction import TOKEN_SHAPED

DEFAULT_RETENTION_DAYS = 180
MAX_DETAILS = 8
MAX_DETAIL_KEY_CHARS = 32
MAX_DETAIL_VALUE_CHARS = 64
MAX_ACTOR_CHARS = 64
MAX_LIST_LIMIT = 1000
# A detail key containing one of these could carry a secret or a user's words: refused outright.
_SECRET_WORDS = ("token", "secret", "cipher", "sealed", "hash", "password", "key", "text", "message")


class EventKind(StrEnum):
    BOT_ADDED = "bot_added"
    BOT_ENABLED = "bot_enabled"
    BOT_DISABLED = "bot_disabled"
    BOT_DELETED = "bot_deleted"
    SECRET_ROTATED = "secret_rotated"  # noqa: S105 - an event name
    SETTINGS_CHANGED = "settings_changed"
    KEY_ROTATED = "key_rotated"
    CALLBACK_REFUSED = "callback_refused"
    # co-admins (issue 15); details carry the actor's role, never an invite code or its hash
    INVITE_CREATED = "invite_created"
    INVITE_REDEEMED = "invite_redeemed"
    INVITE_REVOKED = "invite_revoked"
    ADMIN_REVOKED = "admin_revoked"
    ADMIN_LEFT = "admin_left"
    ACTION_REFUSED = "action_refused"  # an admin tried what only the owner may (delete, rotate, manage admins)
    # broadcasts and the feedback inbox (issue 15), recorded by the dispatcher: counts and ids, never a text
    BROADCAST_STARTED = "broadcast_started"
    BROADCAST_CANCELLED = "broadcast_cancelled"  # an admin asked to stop it (its end is `broadcast_finished`)
    BROADCAST_FINISHED = "broadcast_finished"  # done or cancelled, with the final counts
    INBOX_SENDER_BLOCKED = "inbox_sender_blocked"
    INBOX_SENDER_UNBLOCKED = "inbox_sender_unblocked"


# What the dispatcher adds about a bot's admins' own work (RecordEvent): the registry checks each names a bot and a
# Telegram actor, and writes the actor's role on the bot from its own records (src/tgm/services/botregistry).
ADMIN_WORK_KINDS = frozenset(
    {
        EventKind.BROADCAST_STARTED,
        EventKind.BROADCAST_CANCELLED,
        EventKind.BROADCAST_FINISHED,
        EventKind.INBOX_SENDER_BLOCKED,
        EventKind.INBOX_SENDER_UNBLOCKED,
    }
)


class Outcome(StrEnum):
    DONE = "done"
    REFUSED = "refused"


class UnsafeEventDetails(ValueError):
    """A detail that could carry a secret, or more than a short label."""


def telegram_actor(user_id: int) -> str:
    return f"telegram:{user_id}"


def _check_details(details: Mapping[str, str]) -> None:
    if len(details) > MAX_DETAILS:
        raise UnsafeEventDetails(f"at most {MAX_DETAILS} details")
    for key, value in details.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise UnsafeEventDetails("details are text keys and text values")
        if not key.isidentifier() or len(key) > MAX_DETAIL_KEY_CHARS:
            raise UnsafeEventDetails("a detail key is a short identifier")
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise UnsafeEventDetails(f"detail {key!r} could carry a secret or a message")
        if len(value) > MAX_DETAIL_VALUE_CHARS or not value.isprintable() or TOKEN_SHAPED.search(value):
            raise UnsafeEventDetails(f"detail {key!r} is not a short, token-free label")


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: EventKind
    actor: str
    bot_id: str | None
    outcome: Outcome
    details: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("an event's time is timezone-aware")
        if not self.actor or len(self.actor) > MAX_ACTOR_CHARS or not self.actor.isprintable():
            raise ValueError("an event has a short, printable actor")
        if self.bot_id is not None and not 0 < len(self.bot_id) <= 36:
            raise ValueError("a bot id is 1-36 characters")
        _check_details(self.details)
        object.__setattr__(self, "details", dict(self.details))


@dataclass(frozen=True)
class EventFilter:
    bot_id: str | None = None
    since: datetime | None = None
    kinds: frozenset[EventKind] = frozenset()
    limit: int = 100


class EventRecorder(Protocol):
    """Where an event goes; what a process that only records needs (the dispatcher)."""

    def record(self, event: Event) -> None: ...


class EventTrail(EventRecorder, Protocol):
    def recent(self, query: EventFilter) -> Sequence[Event]:
        """Newest first, at most `query.limit` (capped at MAX_LIST_LIMIT)."""
        ...

    def purge_older_than(self, cutoff: datetime) -> int:
        """Deletes events strictly older than `cutoff`; returns how many went."""
        ...


class PurgeExpiredEvents:
    """The retention job: everything older than `retention_days` (by the clock given) goes."""

    def __init__(self, trail: EventTrail, clock: Clock, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        if retention_days < 1:
            raise ValueError("the retention is at least one day")
        self._trail = trail
        self._clock = clock
        self._retention = timedelta(days=retention_days)

    def __call__(self) -> int:
        return self._trail.purge_older_than(self._clock.now() - self._retention)
