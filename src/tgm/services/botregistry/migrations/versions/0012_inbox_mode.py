"""Feedback inbox per bot (issue 15): users' messages go to the admins, their replies back; off by default.

Revision ID: 0012
Revises: 0010 (0011 was left unused: the broadcast keeps its state in Redis)
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(sa.Column("inbox_enabled", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("inbox_enabled")
