"""announcement outbox: an operator's start or stop is announced on finops.experiments.v1 from
its audit row, which records when it was; the rows written before this revision count as
announced (they were, or their request failed)

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
        "experiment_audit", sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute("UPDATE experiment_audit SET announced_at = at")
    op.create_index(
        "experiment_audit_unannounced",
        "experiment_audit",
        ["id"],
        postgresql_where=sa.text("announced_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("experiment_audit_unannounced", table_name="experiment_audit")
    op.drop_column("experiment_audit", "announced_at")
