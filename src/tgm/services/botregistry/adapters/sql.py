"""SQLAlchemy 2 adapter: the registry's tables and a BotRepository over them.

Works on PostgreSQL (postgresql+psycopg://) and SQLite (the embedded default). The schema itself is
owned by the Alembic migrations in ../migrations; these models mirror it (a contract test compares them).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from tgm.domain.administration.ports import (
    BlockedByUser,
    BotStats,
    Interaction,
    Subscriber,
    SubscriberStats,
    SubscriberStatus,
)
from tgm.domain.bots import ApiCommand, Bot, BotSettings, BotStatus, CaptchaMode, RateRule
from tgm.domain.errors import BotNotFound, ConcurrentUpdate
from tgm.domain.events import MAX_LIST_LIMIT, Event, EventFilter, EventKind, Outcome
from tgm.services.botregistry.errors import DuplicateBot

BOT_STATUSES: tuple[str, ...] = tuple(status.value for status in BotStatus)
STATUS_CHECK_SQL = "status IN (" + ", ".join(f"'{s}'" for s in BOT_STATUSES) + ")"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a timezone-aware column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class BotRow(Base):
    __tablename__ = "bots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int] = mapped_column(BigInteger, index=True)
    telegram_bot_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    username: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # Ciphertext from the vault; there is deliberately no plaintext token column.
    sealed_token: Mapped[bytes] = mapped_column(LargeBinary)
    webhook_secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    welcome_text: Mapped[str] = mapped_column(Text, default="")
    maintenance_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    blocked_users: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    # {"cmd:/start": [limit, window seconds]} and {"cmd:/start": seconds}: the bot's own limits.
    rate_limits: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    cooldowns: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    captcha_mode: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    inbox_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    language: Mapped[str] = mapped_column(String(8))
    is_manager: Mapped[bool] = mapped_column(Boolean, default=False)
    custom_commands: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    api_commands: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Optimistic concurrency (migration 0003): every write is UPDATE … WHERE id = ? AND version = ?.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __table_args__ = (
        CheckConstraint(STATUS_CHECK_SQL, name="status"),
        # At most one manager bot (migration 0003).
        Index(
            "uq_bots_one_manager",
            "is_manager",
            unique=True,
            sqlite_where=text("is_manager"),
            postgresql_where=text("is_manager"),
        ),
    )


class BotUserRow(Base):
    """(bot, Telegram user) pairs a bot has talked to: the bot's subscribers."""

    __tablename__ = "bot_users"

    # The composite primary key is the unique (bot_id, telegram_user_id) pair.
    bot_id: Mapped[str] = mapped_column(String(36), ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    language_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # When a send to the user failed with "bot was blocked by the user" (migration 0009); their next
    # interaction clears it: they came back.
    blocked_bot_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class BotDailyStatsRow(Base):
    """Messages a managed bot received per UTC day (the manager bot's stats)."""

    __tablename__ = "bot_daily_stats"

    bot_id: Mapped[str] = mapped_column(String(36), ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("messages >= 0", name="messages_nonnegative"),)


class EventRow(Base):
    """One entry of the event trail (migration 0008); no foreign key: a deleted bot's events stay."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    bot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    # A small JSON object of labels, never a secret (src/tgm/domain/events.py checks every event).
    details: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")

    __table_args__ = (Index("ix_events_bot_id_at", "bot_id", "at"),)


class BotAdminRow(Base):
    """A co-admin of a bot (migration 0010): who, added by whom (the inviting owner) and when."""

    __tablename__ = "bot_admins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    bot_id: Mapped[str] = mapped_column(String(36), ForeignKey("bots.id", ondelete="CASCADE"))
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    added_by: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("bot_id", "telegram_user_id", name="uq_bot_admins_bot_id_telegram_user_id"),)


class BotInviteRow(Base):
    """A one-time invite to administer a bot (migration 0010). Only the code's SHA-256 is stored."""

    __tablename__ = "bot_invites"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    bot_id: Mapped[str] = mapped_column(String(36), ForeignKey("bots.id", ondelete="CASCADE"), index=True)
    code_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


# ---------------------------------------------------------------------------------------------- engine


def normalize_url(url: str) -> URL:
    """Parses a DB URL; a bare postgresql:// means psycopg 3 (the driver we ship)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str, pool_size: int = 20, max_overflow: int = 40, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets its folder created, WAL, foreign keys and a busy timeout."""
    parsed = normalize_url(url)
    sqlite_file = _sqlite_file(parsed)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=5000")
                if sqlite_file is not None:
                    cursor.execute("PRAGMA journal_mode=WAL")
            finally:
                cursor.close()

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", pool_size)
        kwargs.setdefault("max_overflow", max_overflow)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# ---------------------------------------------------------------------------------------------- mapping


def _to_domain(row: BotRow) -> Bot:
    return Bot(
        id=row.id,
        public_id=row.public_id,
        owner_id=row.owner_id,
        telegram_bot_id=row.telegram_bot_id,
        username=row.username,
        status=BotStatus(row.status),
        sealed_token=bytes(row.sealed_token),
        webhook_secret_sha256=bytes(row.webhook_secret_sha256),
        settings=BotSettings(
            welcome_text=row.welcome_text or "",
            language=row.language,
            custom_commands=_commands_from_json(row.custom_commands),
            api_commands=_apis_from_json(row.api_commands),
            maintenance_text=row.maintenance_text or "",
            blocked_users={int(user): int(until) for user, until in json.loads(row.blocked_users or "{}").items()},
            rate_limits={
                action: RateRule(int(limit), float(window))
                for action, (limit, window) in json.loads(row.rate_limits or "{}").items()
            },
            cooldowns={action: float(seconds) for action, seconds in json.loads(row.cooldowns or "{}").items()},
            captcha_mode=CaptchaMode(row.captcha_mode or "auto"),
            inbox_enabled=bool(row.inbox_enabled),
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        is_manager=row.is_manager,
        version=row.version,
    )


def _columns(bot: Bot) -> dict[str, Any]:
    """Every column of `bot`'s row except id and version."""
    return {
        "public_id": bot.public_id,
        "owner_id": bot.owner_id,
        "telegram_bot_id": bot.telegram_bot_id,
        "username": bot.username,
        "status": bot.status.value,
        "sealed_token": bytes(bot.sealed_token),
        "webhook_secret_sha256": bytes(bot.webhook_secret_sha256),
        "welcome_text": bot.settings.welcome_text,
        "maintenance_text": bot.settings.maintenance_text,
        "blocked_users": json.dumps({str(user): until for user, until in sorted(bot.settings.blocked_users.items())}),
        "rate_limits": json.dumps(
            {action: [rule.limit, rule.window_seconds] for action, rule in bot.settings.rate_limits.items()},
            sort_keys=True,
        ),
        "cooldowns": json.dumps(dict(bot.settings.cooldowns), sort_keys=True),
        "captcha_mode": bot.settings.captcha_mode.value,
        "inbox_enabled": bot.settings.inbox_enabled,
        "language": bot.settings.language,
        "is_manager": bot.is_manager,
        "custom_commands": json.dumps(bot.settings.custom_commands, ensure_ascii=False, sort_keys=True),
        "api_commands": json.dumps(
            {
                name: {"url": api.url, "method": api.method, "timeout_seconds": api.timeout_seconds}
                for name, api in bot.settings.api_commands.items()
            },
            sort_keys=True,
        ),
        "created_at": bot.created_at,
        "updated_at": bot.updated_at,
    }


def _commands_from_json(text: str | None) -> dict[str, str]:
    data = json.loads(text or "{}")
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _apis_from_json(text: str | None) -> dict[str, ApiCommand]:
    data = json.loads(text or "{}")
    if not isinstance(data, dict):
        return {}
    return {
        str(name): ApiCommand(
            url=str(api.get("url", "")),
            method=str(api.get("method", "GET")),
            timeout_seconds=float(api.get("timeout_seconds", 5.0)),
        )
        for name, api in data.items()
        if isinstance(api, dict)
    }


def _is_unique_violation(error: IntegrityError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(error.orig)


class SqlBotRepository:
    """BotRepository over SQLAlchemy; each call is its own short transaction, every write a compare-and-set."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    @staticmethod
    def _demote_other_managers(session: Session, bot: Bot) -> None:
        """A new manager bot: the previous one stops being the manager (and stops serving) in the same
        transaction, before this row claims the one-manager index."""
        if not bot.is_manager:
            return
        session.execute(
            update(BotRow)
            .where(BotRow.is_manager.is_(True), BotRow.id != bot.id)
            .values(is_manager=False, version=BotRow.version + 1)
        )
        session.execute(
            update(BotRow)
            .where(BotRow.owner_id == 0, BotRow.id != bot.id, BotRow.status == "active")
            .values(status="disabled", version=BotRow.version + 1)
        )

    def add(self, bot: Bot) -> None:
        try:
            with self._sessions.begin() as session:
                self._demote_other_managers(session, bot)
                session.add(BotRow(id=bot.id, version=1, **_columns(bot)))
        except IntegrityError as error:
            if _is_unique_violation(error):
                raise DuplicateBot(f"bot {bot.id}: telegram_bot_id or public_id already registered") from None
            raise
        bot.version = 1

    def save(self, bot: Bot) -> None:
        try:
            with self._sessions.begin() as session:
                self._demote_other_managers(session, bot)
                changed = session.execute(
                    update(BotRow)
                    .where(BotRow.id == bot.id, BotRow.version == bot.version)
                    .values(version=bot.version + 1, **_columns(bot))
                )
                if getattr(changed, "rowcount", 0) != 1:
                    if session.get(BotRow, bot.id) is None:
                        raise BotNotFound(f"bot {bot.id} does not exist")
                    raise ConcurrentUpdate(f"bot {bot.id} changed since version {bot.version}")
        except IntegrityError as error:
            if _is_unique_violation(error):
                raise DuplicateBot(f"bot {bot.id}: telegram_bot_id or public_id already registered") from None
            raise
        bot.version += 1

    def replace(self, old: Bot, new: Bot) -> None:
        """Drops `old` (its stats go with it: ON DELETE CASCADE) and adds `new`, in one transaction."""
        try:
            with self._sessions.begin() as session:
                gone = session.execute(delete(BotRow).where(BotRow.id == old.id, BotRow.version == old.version))
                if getattr(gone, "rowcount", 0) != 1:
                    raise ConcurrentUpdate(f"bot {old.id} changed or vanished since version {old.version}")
                session.flush()
                self._demote_other_managers(session, new)
                session.add(BotRow(id=new.id, version=1, **_columns(new)))
        except IntegrityError as error:
            if _is_unique_violation(error):
                raise DuplicateBot(f"bot {new.id}: telegram_bot_id or public_id already registered") from None
            raise
        new.version = 1

    def get(self, bot_id: str) -> Bot | None:
        with self._sessions() as session:
            row = session.get(BotRow, bot_id)
            return _to_domain(row) if row is not None else None

    def versions(self, bot_ids: Sequence[str]) -> dict[str, int]:
        if not bot_ids:
            return {}
        with self._sessions() as session:
            rows = session.execute(select(BotRow.id, BotRow.version).where(BotRow.id.in_(sorted(set(bot_ids)))))
            return {bot_id: version for bot_id, version in rows}

    def by_public_id(self, public_id: str) -> Bot | None:
        return self._one(select(BotRow).where(BotRow.public_id == public_id))

    def by_telegram_bot_id(self, telegram_bot_id: int) -> Bot | None:
        return self._one(select(BotRow).where(BotRow.telegram_bot_id == telegram_bot_id))

    def list_by_owner(self, owner_id: int) -> list[Bot]:
        query = select(BotRow).where(BotRow.owner_id == owner_id).order_by(BotRow.created_at, BotRow.id)
        with self._sessions() as session:
            return [_to_domain(row) for row in session.scalars(query)]

    def count_active(self) -> int:
        """Bots serving updates now (the `telegram_active_bots` gauge)."""
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(BotRow).where(BotRow.status == "active")) or 0)

    def manager_bot(self) -> Bot | None:
        query = select(BotRow).where(BotRow.is_manager.is_(True)).order_by(BotRow.created_at).limit(1)
        return self._one(query)

    def _one(self, query: Any) -> Bot | None:
        with self._sessions() as session:
            row = session.scalars(query).one_or_none()
            return _to_domain(row) if row is not None else None


def _insert_for(session: Session) -> Any:
    """The dialect's INSERT with ON CONFLICT (PostgreSQL and SQLite ≥ 3.24 share the syntax)."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


# PostgreSQL: each batch is two statements whatever its size; the rows travel as arrays and `unnest` turns them back
# into rows in the order given (key order: concurrent batches lock rows in the same order). Same conflict rules as
# the portable upserts below.
_PG_UPSERT_USERS = text(
    """
INSERT INTO bot_users AS u (bot_id, telegram_user_id, language_code, first_seen, last_seen)
SELECT * FROM unnest(CAST(:bot_ids AS varchar[]), CAST(:user_ids AS bigint[]), CAST(:languages AS varchar[]),
                     CAST(:first_seen AS timestamptz[]), CAST(:last_seen AS timestamptz[]))
ON CONFLICT (bot_id, telegram_user_id) DO UPDATE SET
  last_seen = GREATEST(u.last_seen, excluded.last_seen),
  blocked_bot_at = CASE WHEN excluded.last_seen > u.blocked_bot_at THEN NULL ELSE u.blocked_bot_at END,
  language_code = CASE
    WHEN excluded.language_code IS NOT NULL AND (excluded.last_seen >= u.last_seen OR u.language_code IS NULL)
    THEN excluded.language_code ELSE u.language_code END
"""
)
_PG_ADD_DAILY = text(
    """
INSERT INTO bot_daily_stats AS d (bot_id, day, messages)
SELECT * FROM unnest(CAST(:bot_ids AS varchar[]), CAST(:days AS varchar[]), CAST(:counts AS bigint[]))
ON CONFLICT (bot_id, day) DO UPDATE SET messages = d.messages + excluded.messages
"""
)


def _upsert_with_arrays(session: Session, users: list[dict[str, Any]], days: dict[tuple[str, str], int]) -> None:
    session.execute(
        _PG_UPSERT_USERS,
        {
            "bot_ids": [row["bot_id"] for row in users],
            "user_ids": [row["telegram_user_id"] for row in users],
            "languages": [row["language_code"] for row in users],
            "first_seen": [row["first_seen"] for row in users],
            "last_seen": [row["last_seen"] for row in users],
        },
    )
    keys = sorted(days)
    session.execute(
        _PG_ADD_DAILY,
        {"bot_ids": [bot for bot, _ in keys], "days": [day for _, day in keys], "counts": [days[key] for key in keys]},
    )


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class SqlInteractionStats:
    """Stats for the manager bot: users seen (bot_users) and messages per UTC day (bot_daily_stats).

    `record` (the legacy per-update RPC) is portable select-then-insert/update with a retry on a concurrent
    insert; `record_many` (the batch RPC) uses INSERT … ON CONFLICT, which PostgreSQL and SQLite share.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def record(self, bot_id: str, telegram_user_id: int, language_code: str | None, now: datetime) -> None:
        for _attempt in range(3):
            try:
                self._record(bot_id, telegram_user_id, language_code, now)
                return
            except IntegrityError as error:
                if not _is_unique_violation(error):
                    raise
        # Lost three races for the same new row: stats are best effort, the update itself is not affected.

    def _record(self, bot_id: str, telegram_user_id: int, language_code: str | None, now: datetime) -> None:
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        with self._sessions.begin() as session:
            if session.get(BotRow, bot_id) is None:
                return  # unknown bot: nothing to count
            user = session.get(BotUserRow, (bot_id, telegram_user_id))
            if user is None:
                session.add(
                    BotUserRow(
                        bot_id=bot_id,
                        telegram_user_id=telegram_user_id,
                        language_code=language_code,
                        first_seen=now,
                        last_seen=now,
                    )
                )
            else:
                user.last_seen = now
                if user.blocked_bot_at is not None and now > user.blocked_bot_at:
                    user.blocked_bot_at = None
                if language_code:
                    user.language_code = language_code
            bumped = session.execute(
                update(BotDailyStatsRow)
                .where(BotDailyStatsRow.bot_id == bot_id, BotDailyStatsRow.day == day)
                .values(messages=BotDailyStatsRow.messages + 1)
            )
            if getattr(bumped, "rowcount", 0) == 0:
                session.add(BotDailyStatsRow(bot_id=bot_id, day=day, messages=1))

    def record_many(self, interactions: Sequence[Interaction]) -> tuple[int, int]:
        """Stores a batch in one transaction with two multi-row upserts; returns (stored, skipped: unknown bot).

        Entries are merged per (bot, user) and per (bot, day) first: one upsert may not touch a row twice. Rows go
        in key order so concurrent batches lock them in the same order (no deadlock on PostgreSQL).
        """
        if not interactions:
            return 0, 0
        with self._sessions.begin() as session:
            wanted = sorted({item.bot_id for item in interactions})
            known = set(session.scalars(select(BotRow.id).where(BotRow.id.in_(wanted))))
            kept = [item for item in interactions if item.bot_id in known]
            users: dict[tuple[str, int], dict[str, Any]] = {}
            days: dict[tuple[str, str], int] = {}
            for item in kept:
                seen = item.seen_at.astimezone(UTC)
                row = users.setdefault(
                    (item.bot_id, item.telegram_user_id),
                    {
                        "bot_id": item.bot_id,
                        "telegram_user_id": item.telegram_user_id,
                        "language_code": None,
                        "first_seen": seen,
                        "last_seen": seen,
                        "_language_at": seen,
                    },
                )
                row["first_seen"] = min(row["first_seen"], seen)
                if seen >= row["last_seen"]:
                    row["last_seen"] = seen
                if item.language_code and (row["language_code"] is None or seen >= row["_language_at"]):
                    row["language_code"], row["_language_at"] = item.language_code, seen
                day = seen.strftime("%Y-%m-%d")
                days[(item.bot_id, day)] = days.get((item.bot_id, day), 0) + item.messages
            if users and session.get_bind().dialect.name == "postgresql":
                _upsert_with_arrays(session, [users[key] for key in sorted(users)], days)
            elif users:
                insert = _insert_for(session)
                rows = [{k: v for k, v in users[key].items() if k != "_language_at"} for key in sorted(users)]
                # One statement with bound parameters, run for every row (executemany; psycopg batches it): it
                # compiles once and is cached, where a multi-VALUES literal compiled anew for every batch size.
                table = BotUserRow.__table__
                upsert = insert(table)
                session.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[table.c.bot_id, table.c.telegram_user_id],
                        set_={
                            "last_seen": case(
                                (upsert.excluded.last_seen > table.c.last_seen, upsert.excluded.last_seen),
                                else_=table.c.last_seen,
                            ),
                            # An interaction after the failed send: the user unblocked the bot.
                            "blocked_bot_at": case(
                                (upsert.excluded.last_seen > table.c.blocked_bot_at, None),
                                else_=table.c.blocked_bot_at,
                            ),
                            # A late-arriving older entry (a put-back batch) does not undo a newer language.
                            "language_code": case(
                                (
                                    (upsert.excluded.language_code.is_not(None))
                                    & (
                                        (upsert.excluded.last_seen >= table.c.last_seen)
                                        | table.c.language_code.is_(None)
                                    ),
                                    upsert.excluded.language_code,
                                ),
                                else_=table.c.language_code,
                            ),
                        },
                    ),
                    rows,
                )
                daily = BotDailyStatsRow.__table__
                counts = insert(daily)
                session.execute(
                    counts.on_conflict_do_update(
                        index_elements=[daily.c.bot_id, daily.c.day],
                        set_={"messages": daily.c.messages + counts.excluded.messages},
                    ),
                    [{"bot_id": bot, "day": day, "messages": days[(bot, day)]} for bot, day in sorted(days)],
                )
        return len(kept), len(interactions) - len(kept)

    def stats(self, bot_id: str, now: datetime) -> BotStats:
        start = _day_start(now)
        day = start.strftime("%Y-%m-%d")
        with self._sessions() as session:
            users_total = session.scalar(select(func.count()).where(BotUserRow.bot_id == bot_id)) or 0
            users_today = (
                session.scalar(select(func.count()).where(BotUserRow.bot_id == bot_id, BotUserRow.last_seen >= start))
                or 0
            )
            messages = session.scalar(
                select(BotDailyStatsRow.messages).where(BotDailyStatsRow.bot_id == bot_id, BotDailyStatsRow.day == day)
            )
        return BotStats(users_total=int(users_total), users_today=int(users_today), messages_today=int(messages or 0))

    def mark_blocked(self, entries: Sequence[BlockedByUser]) -> int:
        """Marks subscribers who blocked the bot; returns how many rows changed. A user seen after the failed send
        came back in between and stays active; an unknown (bot, user) pair is skipped."""
        changed = 0
        with self._sessions.begin() as session:
            for entry in sorted(entries, key=lambda item: (item.bot_id, item.telegram_user_id)):
                result = session.execute(
                    update(BotUserRow)
                    .where(
                        BotUserRow.bot_id == entry.bot_id,
                        BotUserRow.telegram_user_id == entry.telegram_user_id,
                        BotUserRow.last_seen <= entry.at,
                    )
                    .values(blocked_bot_at=entry.at)
                )
                changed += getattr(result, "rowcount", 0)
        return changed

    def subscriber_stats(self, bot_id: str, now: datetime, blocked_by_admin: Collection[int]) -> SubscriberStats:
        """Counts in one query; `blocked_by_admin` are the bot's users under a /block now (at most 1000)."""
        today = _day_start(now)
        week = today - timedelta(days=6)  # today and the six days before: 7 UTC days
        admin_ids = sorted(blocked_by_admin)
        by_admin = BotUserRow.telegram_user_id.in_(admin_ids) if admin_ids else false()

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        query = select(
            func.count(),
            count(by_admin),
            count(BotUserRow.blocked_bot_at.is_not(None) & ~by_admin),
            count(BotUserRow.first_seen >= today),
            count(BotUserRow.first_seen >= week),
        ).where(BotUserRow.bot_id == bot_id)
        with self._sessions() as session:
            total, admin, blocked_bot, new_today, new_week = session.execute(query).one()
        return SubscriberStats(
            total=int(total),
            active=int(total) - int(admin) - int(blocked_bot),
            blocked_bot=int(blocked_bot),
            blocked_by_admin=int(admin),
            new_today=int(new_today),
            new_7_days=int(new_week),
        )

    def list_subscribers(self, bot_id: str, after_user_id: int, limit: int) -> list[Subscriber]:
        """A page by user id (keyset: the primary key's order, no OFFSET scan)."""
        query = (
            select(BotUserRow)
            .where(BotUserRow.bot_id == bot_id, BotUserRow.telegram_user_id > after_user_id)
            .order_by(BotUserRow.telegram_user_id)
            .limit(limit)
        )
        with self._sessions() as session:
            return [
                Subscriber(
                    telegram_user_id=row.telegram_user_id,
                    first_seen=row.first_seen,
                    last_seen=row.last_seen,
                    status=SubscriberStatus.ACTIVE if row.blocked_bot_at is None else SubscriberStatus.BLOCKED_BOT,
                )
                for row in session.scalars(query)
            ]


class SqlEventTrail:
    """EventTrail over the `events` table; each call is its own short transaction."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def record(self, event: Event) -> None:
        with self._sessions.begin() as session:
            session.add(
                EventRow(
                    at=event.at,
                    kind=event.kind.value,
                    actor=event.actor,
                    bot_id=event.bot_id,
                    outcome=event.outcome.value,
                    details=json.dumps(dict(event.details), sort_keys=True, ensure_ascii=False),
                )
            )

    def recent(self, query: EventFilter) -> list[Event]:
        statement = select(EventRow).order_by(EventRow.at.desc(), EventRow.id.desc())
        if query.bot_id is not None:
            statement = statement.where(EventRow.bot_id == query.bot_id)
        if query.since is not None:
            statement = statement.where(EventRow.at >= query.since)
        if query.kinds:
            statement = statement.where(EventRow.kind.in_(sorted(kind.value for kind in query.kinds)))
        statement = statement.limit(max(0, min(query.limit, MAX_LIST_LIMIT)))
        with self._sessions() as session:
            return [
                Event(
                    at=row.at,
                    kind=EventKind(row.kind),
                    actor=row.actor,
                    bot_id=row.bot_id,
                    outcome=Outcome(row.outcome),
                    details=json.loads(row.details or "{}"),
                )
                for row in session.scalars(statement)
            ]

    def purge_older_than(self, cutoff: datetime) -> int:
        """One range delete on the time index."""
        with self._sessions.begin() as session:
            gone = session.execute(delete(EventRow).where(EventRow.at < cutoff))
            return int(getattr(gone, "rowcount", 0) or 0)
