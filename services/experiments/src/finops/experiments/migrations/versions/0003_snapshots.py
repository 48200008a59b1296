"""experiment snapshots: each experiment's results state, saved with its partition's checkpoint;
a partition's checkpoint records its position, and is never replaced by one behind it

Revision ID: exp0003
Revises: exp0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "exp0003"
down_revision = "exp0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments_checkpoints", sa.Column("position", sa.BigInteger, nullable=True))
    op.create_table(
        "experiment_snapshots",
        sa.Column("experiment_id", sa.Text, primary_key=True),
        sa.Column("checkpoint", sa.Text, nullable=False),
        sa.Column("snapshot", postgresql.JSONB, nullable=False),
        sa.Column(
            "saved_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_column("experiments_checkpoints", "position")
    op.drop_table("experiment_snapshots")
