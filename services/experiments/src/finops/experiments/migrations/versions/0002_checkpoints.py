"""experiments checkpoints: the analysis state stored together with the offsets it covers

Revision ID: exp0002
Revises: exp0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "exp0002"
down_revision = "exp0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments_checkpoints",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("offsets", postgresql.JSONB, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("cluster_id", sa.Text, nullable=True),
        sa.Column(
            "saved_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("experiments_checkpoints")
