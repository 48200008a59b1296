"""healer checkpoints: learned remedy effectiveness and stats with the offsets they cover

Revision ID: heal0002
Revises: heal0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "heal0002"
down_revision = "heal0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "healer_checkpoints",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("offsets", postgresql.JSONB, nullable=False),
        sa.Column("cluster_id", sa.Text, nullable=True),
        sa.Column(
            "saved_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("healer_checkpoints")
