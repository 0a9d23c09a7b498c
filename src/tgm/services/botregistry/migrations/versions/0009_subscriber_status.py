"""Subscribers (issue 15): when a user blocked the bot (Telegram's 403 "bot was blocked by the user").

NULL while the user can be reached; cleared by their next interaction (they came back).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bot_users") as batch:
        batch.add_column(sa.Column("blocked_bot_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bot_users") as batch:
        batch.drop_column("blocked_bot_at")
