"""announcement outbox: an operator's start or stop is announced on finops.experiments.v1 from
its audit row, which records when it was. Rows written before this revision, and rows the
previous version writes while it still serves during a rolling upgrade (the column's default),
count as announced: that version announced them itself, and those whose announcement failed
are given up knowingly. A downgrade is refused while a start or stop waits to be announced:
dropping the column would lose it.

Revision ID: exp0004
Revises: exp0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "exp0004"
down_revision = "exp0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "experiment_audit",
        sa.Column(
            "announced_at", sa.DateTime(timezone=True), nullable=True, server_default=sa.func.now()
        ),
    )
    # the topic its announcement goes to: the one of the instance that recorded the change
    op.add_column("experiment_audit", sa.Column("announce_on", sa.Text, nullable=True))
    op.execute("UPDATE experiment_audit SET announced_at = at")
    op.create_index(
        "experiment_audit_unannounced",
        "experiment_audit",
        ["id"],
        postgresql_where=sa.text("announced_at IS NULL"),
    )


def downgrade() -> None:
    waiting = op.get_bind().execute(
        sa.text("SELECT count(*) FROM experiment_audit WHERE announced_at IS NULL")
    )
    if waiting.scalar():
        raise RuntimeError(
            "starts, stops or decisions of experiments wait to be announced on "
            "finops.experiments.v1: "
            "start the experiments service until they are, then downgrade"
        )
    op.drop_index("experiment_audit_unannounced", table_name="experiment_audit")
    op.drop_column("experiment_audit", "announce_on")
    op.drop_column("experiment_audit", "announced_at")
