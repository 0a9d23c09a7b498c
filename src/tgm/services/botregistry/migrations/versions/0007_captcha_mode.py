"""CAPTCHA for new users per bot (issue 12): "auto" (while the bot is under attack), "on" or "off".

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(sa.Column("captcha_mode", sa.String(8), nullable=False, server_default="auto"))


def downgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("captcha_mode")
