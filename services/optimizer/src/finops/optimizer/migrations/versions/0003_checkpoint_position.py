"""optimizer checkpoints of one learning partition remember its next offset (the position
guard: an instance that lost the partition cannot overwrite its successor's checkpoint)

Revision ID: opt0003
Revises: opt0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "opt0003"
down_revision = "opt0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("optimizer_checkpoints", sa.Column("position", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("optimizer_checkpoints", "position")
