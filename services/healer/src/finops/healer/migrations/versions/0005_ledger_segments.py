"""healer ledger checkpoints in segments: each instance saves only the segments of its pending
advices and healed chains that changed (``healer_ledger_segments``), under a checkpoint row of
its own (``<name>@<writer>``, ``segmented``)

Downgrading removes those rows with the table: the version before reads only the checkpoint
named ``<name>`` (which this version removes once it saved its own), so it rebuilds the
ledger from the log.

Revision ID: heal0005
Revises: heal0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "heal0005"
down_revision = "heal0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "healer_checkpoints",
        sa.Column("segmented", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "healer_ledger_segments",
        sa.Column("checkpoint", sa.Text, primary_key=True),
        sa.Column("part", sa.Text, primary_key=True),
        sa.Column("segment", sa.BigInteger, primary_key=True),
        sa.Column("entries", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.execute("DELETE FROM healer_checkpoints WHERE segmented")
    op.drop_table("healer_ledger_segments")
    op.drop_column("healer_checkpoints", "segmented")
