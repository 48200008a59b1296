"""healer error labels: what operators taught the text classifier (replayed at start-up)

Revision ID: heal0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "heal0001"
down_revision = None
branch_labels = ("healer",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "healer_error_labels",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("healer_error_labels")
