"""optimizer checkpoints remember the broker cluster their offsets were read from

Revision ID: opt0002
Revises: opt0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "opt0002"
down_revision = "opt0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("optimizer_checkpoints", sa.Column("cluster_id", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("optimizer_checkpoints", "cluster_id")
