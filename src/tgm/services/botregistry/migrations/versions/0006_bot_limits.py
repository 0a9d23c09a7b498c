"""Per-bot rate limits and cooldowns (issue 12): JSON objects of action → [limit, window seconds] and
action → seconds, over the dispatcher's RATE_LIMITS_JSON / COOLDOWNS_JSON.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(sa.Column("rate_limits", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("cooldowns", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("cooldowns")
        batch.drop_column("rate_limits")
