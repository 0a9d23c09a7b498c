"""Co-admins (issue 15): a bot's admins besides its owner, and one-time invites to become one.

`bot_admins`: one row per (bot, admin) with who added them and when; looked up by user for "my bots".
`bot_invites`: only the SHA-256 of each code (unique: the redeem lookup), who created it, when it expires, and when
it was used (by whom) or revoked. Both go with their bot (ON DELETE CASCADE).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_admins",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("bot_id", sa.String(36), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("added_by", sa.BigInteger(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bot_admins"),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.id"], name="fk_bot_admins_bot_id_bots", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("bot_id", "telegram_user_id", name="uq_bot_admins_bot_id_telegram_user_id"),
    )
    op.create_index("ix_bot_admins_telegram_user_id", "bot_admins", ["telegram_user_id"])
    op.create_table(
        "bot_invites",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("bot_id", sa.String(36), nullable=False),
        sa.Column("code_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_by", sa.BigInteger(), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bot_invites"),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.id"], name="fk_bot_invites_bot_id_bots", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("code_sha256", name="uq_bot_invites_code_sha256"),
    )
    op.create_index("ix_bot_invites_bot_id", "bot_invites", ["bot_id"])


def downgrade() -> None:
    op.drop_index("ix_bot_invites_bot_id", table_name="bot_invites")
    op.drop_table("bot_invites")
    op.drop_index("ix_bot_admins_telegram_user_id", table_name="bot_admins")
    op.drop_table("bot_admins")
