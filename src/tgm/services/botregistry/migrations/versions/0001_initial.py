"""Initial schema: bots and bot_users.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the states at the time of this revision (a migration never imports the live enum).
STATUSES = ("pending", "active", "disabled", "deleted", "failed")


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("public_id", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_bot_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sealed_token", sa.LargeBinary(), nullable=False),
        sa.Column("webhook_secret_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("welcome_text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("is_manager", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bots"),
        sa.UniqueConstraint("public_id", name="uq_bots_public_id"),
        sa.UniqueConstraint("telegram_bot_id", name="uq_bots_telegram_bot_id"),
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")",
            name=op.f("ck_bots_status"),
        ),
    )
    op.create_index("ix_bots_owner_id", "bots", ["owner_id"])
    op.create_table(
        "bot_users",
        sa.Column("bot_id", sa.String(36), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("language_code", sa.String(16), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name="fk_bot_users_bot_id_bots", ondelete="CASCADE"),
        # The primary key is the unique (bot_id, telegram_user_id) pair.
        sa.PrimaryKeyConstraint("bot_id", "telegram_user_id", name="pk_bot_users"),
    )


def downgrade() -> None:
    op.drop_table("bot_users")
    op.drop_index("ix_bots_owner_id", table_name="bots")
    op.drop_table("bots")
