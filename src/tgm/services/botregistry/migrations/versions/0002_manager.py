"""Manager bot: bot settings (custom and API commands) and daily interaction counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        # JSON documents validated by the registry ({"/cmd": "reply"} and {"/cmd": {url, method, timeout}}).
        batch.add_column(sa.Column("custom_commands", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("api_commands", sa.Text(), nullable=False, server_default="{}"))
    op.create_index("ix_bot_users_last_seen", "bot_users", ["last_seen"])
    op.create_table(
        "bot_daily_stats",
        sa.Column("bot_id", sa.String(36), nullable=False),
        # UTC day, YYYY-MM-DD
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name="fk_bot_daily_stats_bot_id_bots", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("bot_id", "day", name="pk_bot_daily_stats"),
        sa.CheckConstraint("messages >= 0", name=op.f("ck_bot_daily_stats_messages_nonnegative")),
    )


def downgrade() -> None:
    op.drop_table("bot_daily_stats")
    op.drop_index("ix_bot_users_last_seen", table_name="bot_users")
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("api_commands")
        batch.drop_column("custom_commands")
