"""BotAdminStore (src/tgm/domain/bot_roles.py) over the `bot_admins` and `bot_invites` tables (migration 0010).

PostgreSQL and SQLite alike: a redeem is one transaction whose conditional UPDATE of the invite (still unused, not
revoked) decides who wins a race; the loser's transaction adds nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tgm.domain.bot_roles import CoAdmin, Invite
from tgm.services.botregistry.adapters.sql import BotAdminRow, BotInviteRow


def _admin(row: BotAdminRow) -> CoAdmin:
    return CoAdmin(row.id, row.bot_id, row.telegram_user_id, row.added_by, row.added_at)


def _invite(row: BotInviteRow) -> Invite:
    return Invite(
        id=row.id,
        bot_id=row.bot_id,
        code_sha256=bytes(row.code_sha256),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_by=row.used_by,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
    )


class SqlBotAdminStore:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def admin_ids(self, bot_id: str) -> frozenset[int]:
        with self._sessions() as session:
            query = select(BotAdminRow.telegram_user_id).where(BotAdminRow.bot_id == bot_id)
            return frozenset(session.scalars(query))

    def admins(self, bot_id: str) -> list[CoAdmin]:
        query = select(BotAdminRow).where(BotAdminRow.bot_id == bot_id).order_by(BotAdminRow.added_at, BotAdminRow.id)
        with self._sessions() as session:
            return [_admin(row) for row in session.scalars(query)]

    def membership(self, membership_id: str) -> CoAdmin | None:
        with self._sessions() as session:
            row = session.get(BotAdminRow, membership_id)
            return _admin(row) if row is not None else None

    def bots_administered_by(self, telegram_user_id: int) -> list[str]:
        query = (
            select(BotAdminRow.bot_id)
            .where(BotAdminRow.telegram_user_id == telegram_user_id)
            .order_by(BotAdminRow.added_at, BotAdminRow.bot_id)
        )
        with self._sessions() as session:
            return list(session.scalars(query))

    def remove_admin(self, bot_id: str, telegram_user_id: int) -> bool:
        with self._sessions.begin() as session:
            row = session.scalars(
                select(BotAdminRow).where(
                    BotAdminRow.bot_id == bot_id, BotAdminRow.telegram_user_id == telegram_user_id
                )
            ).one_or_none()
            if row is None:
                return False
            session.delete(row)
            return True

    def add_invite(self, invite: Invite) -> None:
        with self._sessions.begin() as session:
            session.add(
                BotInviteRow(
                    id=invite.id,
                    bot_id=invite.bot_id,
                    code_sha256=invite.code_sha256,
                    created_by=invite.created_by,
                    created_at=invite.created_at,
                    expires_at=invite.expires_at,
                    used_by=invite.used_by,
                    used_at=invite.used_at,
                    revoked_at=invite.revoked_at,
                )
            )

    def invite_by_hash(self, code_sha256: bytes) -> Invite | None:
        with self._sessions() as session:
            row = session.scalars(select(BotInviteRow).where(BotInviteRow.code_sha256 == code_sha256)).one_or_none()
            return _invite(row) if row is not None else None

    def invite(self, invite_id: str) -> Invite | None:
        with self._sessions() as session:
            row = session.get(BotInviteRow, invite_id)
            return _invite(row) if row is not None else None

    def pending_invites(self, bot_id: str, now: datetime) -> list[Invite]:
        query = (
            select(BotInviteRow)
            .where(
                BotInviteRow.bot_id == bot_id,
                BotInviteRow.used_at.is_(None),
                BotInviteRow.revoked_at.is_(None),
                BotInviteRow.expires_at > now,
            )
            .order_by(BotInviteRow.created_at, BotInviteRow.id)
        )
        with self._sessions() as session:
            return [_invite(row) for row in session.scalars(query)]

    def revoke_invite(self, invite_id: str, now: datetime) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(BotInviteRow)
                .where(BotInviteRow.id == invite_id, BotInviteRow.used_at.is_(None), BotInviteRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return int(getattr(result, "rowcount", 0) or 0) == 1

    def clear(self, bot_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(BotAdminRow).where(BotAdminRow.bot_id == bot_id))
            session.execute(delete(BotInviteRow).where(BotInviteRow.bot_id == bot_id))

    def redeem(self, invite_id: str, admin: CoAdmin) -> bool:
        try:
            with self._sessions.begin() as session:
                spent = session.execute(
                    update(BotInviteRow)
                    .where(
                        BotInviteRow.id == invite_id,
                        BotInviteRow.bot_id == admin.bot_id,
                        BotInviteRow.used_at.is_(None),
                        BotInviteRow.revoked_at.is_(None),
                    )
                    .values(used_by=admin.telegram_user_id, used_at=admin.added_at)
                )
                if int(getattr(spent, "rowcount", 0) or 0) != 1:
                    return False
                session.add(
                    BotAdminRow(
                        id=admin.id,
                        bot_id=admin.bot_id,
                        telegram_user_id=admin.telegram_user_id,
                        added_by=admin.added_by,
                        added_at=admin.added_at,
                    )
                )
        except IntegrityError:
            return False  # already an admin (joined through another invite meanwhile): the invite stays unused
        return True
