"""healer checkpoints of one breaker partition remember its next offset (the position guard:
an instance that lost the partition cannot overwrite its successor's checkpoint)

Revision ID: heal0004
Revises: heal0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "heal0004"
down_revision = "heal0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("healer_checkpoints", sa.Column("position", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("healer_checkpoints", "position")
