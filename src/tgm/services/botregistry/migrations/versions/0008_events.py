"""The event trail (issue 9): admin actions and security events, kept EVENT_RETENTION_DAYS (180) days.

Indexed on the time (newest first, and the retention job's range delete) and on (bot_id, time) for one bot's
events. No foreign key to bots: a deleted bot's events outlive its row. `details` is a small JSON object of
labels that never holds a secret (src/tgm/domain/events.py checks it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.String(36), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("details", sa.Text(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_bot_id_at", "events", ["bot_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_events_bot_id_at", table_name="events")
    op.drop_index("ix_events_at", table_name="events")
    op.drop_table("events")
