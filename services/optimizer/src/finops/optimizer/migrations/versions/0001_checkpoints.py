"""optimizer checkpoints: learned state stored together with the offsets it covers

Revision ID: opt0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "opt0001"
down_revision = None
branch_labels = ("optimizer",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "optimizer_checkpoints",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("offsets", postgresql.JSONB, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column(
            "saved_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("optimizer_checkpoints")
