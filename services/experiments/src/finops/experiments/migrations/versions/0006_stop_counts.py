"""stop counts: the calls the analysis had counted of each variant when it saw an operator's
stop, recorded before any checkpoint holds the stop, so that a replay after a crash counts the
experiment's calls up to them again (as a decision's counts) instead of showing zeros.

Revision ID: exp0006
Revises: exp0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "exp0006"
down_revision = "exp0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("stop_counts", postgresql.JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("experiments", "stop_counts")
