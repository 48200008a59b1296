"""healer checkpoints have the events column every service's checkpoint table has

One checkpoint store (``finops.common.checkpoints``) serves the optimizer, experiments and
healer tables; the healer does not count events in its checkpoints, so they hold 0.

Revision ID: heal0003
Revises: heal0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "heal0003"
down_revision = "heal0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "healer_checkpoints",
        sa.Column("events", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("healer_checkpoints", "events")
