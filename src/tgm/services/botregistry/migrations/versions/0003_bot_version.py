"""Optimistic concurrency on bots (a version column) and at most one manager bot.

Revision ID: 0003
Revises: 0002
Create Date: 2026-02-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        # Every write is UPDATE … WHERE id = ? AND version = ?: a stale write never lands.
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    # Before the index: keep only the most recently created manager row.
    bots = sa.table(
        "bots", sa.column("id", sa.String), sa.column("is_manager", sa.Boolean), sa.column("created_at", sa.DateTime)
    )
    conn = op.get_bind()
    managers = conn.execute(
        sa.select(bots.c.id).where(bots.c.is_manager.is_(True)).order_by(bots.c.created_at.desc())
    ).all()
    for (bot_id,) in managers[1:]:
        conn.execute(sa.update(bots).where(bots.c.id == bot_id).values(is_manager=False))
    op.create_index(
        "uq_bots_one_manager",
        "bots",
        ["is_manager"],
        unique=True,
        sqlite_where=sa.text("is_manager"),
        postgresql_where=sa.text("is_manager"),
    )


def downgrade() -> None:
    op.drop_index("uq_bots_one_manager", table_name="bots")
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("version")
