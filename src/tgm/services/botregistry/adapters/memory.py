"""In-memory BotRepository for unit tests and the embedded mode; behaves like the SQL one."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tgm.domain.administration.ports import BlockedByUser, BotStats, Subscriber, SubscriberStats, SubscriberStatus
from tgm.domain.bot_roles import CoAdmin, Invite
from tgm.domain.bots import Bot, BotStatus
from tgm.domain.errors import BotNotFound, ConcurrentUpdate
from tgm.domain.events import MAX_LIST_LIMIT, Event, EventFilter
from tgm.services.botregistry.errors import DuplicateBot


class InMemoryBotRepository:
    """Stores copies, so a caller mutating a Bot changes nothing until it calls save()."""

    def __init__(self) -> None:
        self._bots: dict[str, Bot] = {}
        self._lock = threading.Lock()
        # Called with the bot id whenever a row is dropped (replace), e.g. to drop its stats.
        self.on_drop: Callable[[str], None] | None = None

    def add(self, bot: Bot) -> None:
        with self._lock:
            if bot.id in self._bots:
                raise DuplicateBot(f"bot {bot.id} already exists")
            self._check_unique(bot)
            self._demote_other_managers(bot)
            bot.version = 1
            self._bots[bot.id] = copy.deepcopy(bot)

    def save(self, bot: Bot) -> None:
        with self._lock:
            current = self._bots.get(bot.id)
            if current is None:
                raise BotNotFound(f"bot {bot.id} does not exist")
            if current.version != bot.version:
                raise ConcurrentUpdate(f"bot {bot.id} changed since version {bot.version}")
            self._check_unique(bot)
            self._demote_other_managers(bot)
            bot.version += 1
            self._bots[bot.id] = copy.deepcopy(bot)

    def replace(self, old: Bot, new: Bot) -> None:
        with self._lock:
            current = self._bots.get(old.id)
            if current is None or current.version != old.version:
                raise ConcurrentUpdate(f"bot {old.id} changed or vanished since version {old.version}")
            del self._bots[old.id]
            try:
                self._check_unique(new)
            except DuplicateBot:
                self._bots[old.id] = current
                raise
            self._demote_other_managers(new)
            new.version = 1
            self._bots[new.id] = copy.deepcopy(new)
        if self.on_drop is not None:
            self.on_drop(old.id)

    def _demote_other_managers(self, bot: Bot) -> None:
        if not bot.is_manager:
            return
        for other in self._bots.values():
            if other.id == bot.id:
                continue
            if other.is_manager:
                other.is_manager = False
                other.version += 1
            if other.owner_id == 0 and other.status is BotStatus.ACTIVE:
                other.status = BotStatus.DISABLED
                other.version += 1

    def get(self, bot_id: str) -> Bot | None:
        with self._lock:
            bot = self._bots.get(bot_id)
            return copy.deepcopy(bot) if bot is not None else None

    def versions(self, bot_ids: Sequence[str]) -> dict[str, int]:
        with self._lock:
            return {bot_id: self._bots[bot_id].version for bot_id in bot_ids if bot_id in self._bots}

    def by_public_id(self, public_id: str) -> Bot | None:
        return self._find(lambda bot: bot.public_id == public_id)

    def by_telegram_bot_id(self, telegram_bot_id: int) -> Bot | None:
        return self._find(lambda bot: bot.telegram_bot_id == telegram_bot_id)

    def list_by_owner(self, owner_id: int) -> list[Bot]:
        with self._lock:
            mine = [copy.deepcopy(bot) for bot in self._bots.values() if bot.owner_id == owner_id]
        return sorted(mine, key=lambda bot: (bot.created_at, bot.id))

    def manager_bot(self) -> Bot | None:
        return self._find(lambda bot: bot.is_manager)

    def _check_unique(self, bot: Bot) -> None:
        for other in self._bots.values():
            if other.id == bot.id:
                continue
            if other.telegram_bot_id == bot.telegram_bot_id or other.public_id == bot.public_id:
                raise DuplicateBot(f"bot {bot.id}: telegram_bot_id or public_id already registered")

    def _find(self, matches: Callable[[Bot], bool]) -> Bot | None:
        with self._lock:
            for bot in self._bots.values():
                if matches(bot):
                    return copy.deepcopy(bot)
        return None


class InMemoryInteractionStats:
    """InteractionStats in dicts (unit tests)."""

    def __init__(self) -> None:
        self._last_seen: dict[tuple[str, int], datetime] = {}
        self._first_seen: dict[tuple[str, int], datetime] = {}
        self._blocked_bot: dict[tuple[str, int], datetime] = {}
        self._messages: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None, now: datetime) -> None:
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        key = (bot_id, telegram_user_id)
        with self._lock:
            self._last_seen[key] = now
            self._first_seen.setdefault(key, now)
            if key in self._blocked_bot and now > self._blocked_bot[key]:
                del self._blocked_bot[key]  # they came back
            self._messages[(bot_id, day)] = self._messages.get((bot_id, day), 0) + 1

    def drop(self, bot_id: str) -> None:
        with self._lock:
            self._last_seen = {key: at for key, at in self._last_seen.items() if key[0] != bot_id}
            self._first_seen = {key: at for key, at in self._first_seen.items() if key[0] != bot_id}
            self._blocked_bot = {key: at for key, at in self._blocked_bot.items() if key[0] != bot_id}
            self._messages = {key: n for key, n in self._messages.items() if key[0] != bot_id}

    def stats(self, bot_id: str, now: datetime) -> BotStats:
        start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        with self._lock:
            seen = [at for (bot, _user), at in self._last_seen.items() if bot == bot_id]
            messages = self._messages.get((bot_id, start.strftime("%Y-%m-%d")), 0)
        return BotStats(
            users_total=len(seen), users_today=sum(1 for at in seen if at >= start), messages_today=messages
        )

    def subscriber_stats(self, bot_id: str, now: datetime, blocked_by_admin: Collection[int]) -> SubscriberStats:
        start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        week = start - timedelta(days=6)
        with self._lock:
            users = {user: first for (bot, user), first in self._first_seen.items() if bot == bot_id}
            blocked = {user for (bot, user) in self._blocked_bot if bot == bot_id}
        admin = set(blocked_by_admin) & set(users)
        blocked_bot = len(blocked - admin)
        return SubscriberStats(
            total=len(users),
            active=len(users) - len(admin) - blocked_bot,
            blocked_bot=blocked_bot,
            blocked_by_admin=len(admin),
            new_today=sum(1 for first in users.values() if first >= start),
            new_7_days=sum(1 for first in users.values() if first >= week),
        )

    def list_subscribers(self, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        with self._lock:
            users = sorted(user for bot, user in self._first_seen if bot == bot_id and user > after_user_id)[:limit]
            return [
                Subscriber(
                    telegram_user_id=user,
                    first_seen=self._first_seen[(bot_id, user)],
                    last_seen=self._last_seen[(bot_id, user)],
                    status=SubscriberStatus.BLOCKED_BOT
                    if (bot_id, user) in self._blocked_bot
                    else SubscriberStatus.ACTIVE,
                )
                for user in users
            ]

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int:
        changed = 0
        with self._lock:
            for entry in entries:
                key = (entry.bot_id, entry.telegram_user_id)
                if key in self._last_seen and self._last_seen[key] <= entry.at:
                    self._blocked_bot[key] = entry.at
                    changed += 1
        return changed


class InMemoryEventTrail:
    """EventTrail in a list (unit tests), under a lock like the repository."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def recent(self, query: EventFilter) -> Sequence[Event]:
        with self._lock:
            events = list(self.events)
        found = [
            event
            for event in events
            if (query.bot_id is None or event.bot_id == query.bot_id)
            and (query.since is None or event.at >= query.since)
            and (not query.kinds or event.kind in query.kinds)
        ]
        found.sort(key=lambda event: event.at, reverse=True)
        return found[: max(0, min(query.limit, MAX_LIST_LIMIT))]

    def purge_older_than(self, cutoff: datetime) -> int:
        with self._lock:
            kept = [event for event in self.events if event.at >= cutoff]
            gone = len(self.events) - len(kept)
            self.events = kept
        return gone


class InMemoryBotAdminStore:
    """BotAdminStore in dicts (unit tests), under one lock: a redeem is atomic as in SQL."""

    def __init__(self) -> None:
        self._admins: dict[str, CoAdmin] = {}
        self._invites: dict[str, Invite] = {}
        self._lock = threading.Lock()

    def admin_ids(self, bot_id: str) -> frozenset[int]:
        with self._lock:
            return frozenset(a.telegram_user_id for a in self._admins.values() if a.bot_id == bot_id)

    def admins(self, bot_id: str) -> list[CoAdmin]:
        with self._lock:
            found = [a for a in self._admins.values() if a.bot_id == bot_id]
        return sorted(found, key=lambda a: (a.added_at, a.id))

    def membership(self, membership_id: str) -> CoAdmin | None:
        with self._lock:
            return self._admins.get(membership_id)

    def bots_administered_by(self, telegram_user_id: int) -> list[str]:
        with self._lock:
            found = [a for a in self._admins.values() if a.telegram_user_id == telegram_user_id]
        return [a.bot_id for a in sorted(found, key=lambda a: (a.added_at, a.bot_id))]

    def remove_admin(self, bot_id: str, telegram_user_id: int) -> bool:
        with self._lock:
            for key, admin in list(self._admins.items()):
                if admin.bot_id == bot_id and admin.telegram_user_id == telegram_user_id:
                    del self._admins[key]
                    return True
        return False

    def add_invite(self, invite: Invite) -> None:
        with self._lock:
            if invite.id in self._invites or any(i.code_sha256 == invite.code_sha256 for i in self._invites.values()):
                raise DuplicateBot("invite id or code already stored")
            self._invites[invite.id] = invite

    def invite_by_hash(self, code_sha256: bytes) -> Invite | None:
        with self._lock:
            return next((i for i in self._invites.values() if i.code_sha256 == code_sha256), None)

    def invite(self, invite_id: str) -> Invite | None:
        with self._lock:
            return self._invites.get(invite_id)

    def pending_invites(self, bot_id: str, now: datetime) -> list[Invite]:
        with self._lock:
            found = [i for i in self._invites.values() if i.bot_id == bot_id and i.pending(now)]
        return sorted(found, key=lambda i: (i.created_at, i.id))

    def revoke_invite(self, invite_id: str, now: datetime) -> bool:
        with self._lock:
            invite = self._invites.get(invite_id)
            if invite is None or invite.used_at is not None or invite.revoked_at is not None:
                return False
            self._invites[invite_id] = replace(invite, revoked_at=now)
            return True

    def clear(self, bot_id: str) -> None:
        with self._lock:
            self._admins = {key: a for key, a in self._admins.items() if a.bot_id != bot_id}
            self._invites = {key: i for key, i in self._invites.items() if i.bot_id != bot_id}

    def redeem(self, invite_id: str, admin: CoAdmin) -> bool:
        with self._lock:
            invite = self._invites.get(invite_id)
            if invite is None or invite.bot_id != admin.bot_id or invite.used_at is not None or invite.revoked_at:
                return False
            taken = any(
                a.bot_id == admin.bot_id and a.telegram_user_id == admin.telegram_user_id for a in self._admins.values()
            )
            if taken:
                return False
            self._invites[invite_id] = replace(invite, used_by=admin.telegram_user_id, used_at=admin.added_at)
            self._admins[admin.id] = admin
            return True
