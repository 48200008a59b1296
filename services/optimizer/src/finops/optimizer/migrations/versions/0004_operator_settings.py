"""optimizer settings ledger: the latest operator change of every setting (catalog arm,
objective, budget), numbered from one sequence, written by the one worker and by partitioned
learning alike, so a setting changed in one follows a switch to the other. Empty at first:
settings made before it stay in the checkpoints of the kind of learning they were made in.

The downgrade drops the table but keeps the sequence: checkpoints and the internal topic hold
numbers it gave, and an engine skips a change numbered as low as one it applied, so numbers
must never start again from 1 (the upgrade creates the sequence only if it is not there).

Revision ID: opt0004
Revises: opt0003
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "opt0004"
down_revision = "opt0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE IF NOT EXISTS optimizer_settings_seq")
    op.create_table(
        "optimizer_settings",
        sa.Column("name", sa.Text, primary_key=True),  # the checkpoint name of the deployment
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("change", postgresql.JSONB, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    # optimizer_settings_seq stays (see above): a later upgrade numbers on from it
    op.drop_table("optimizer_settings")
