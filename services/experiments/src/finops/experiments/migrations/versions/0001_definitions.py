"""experiments: definitions, their audit trail, and the task types the platform has seen

Revision ID: exp0001
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "exp0001"
down_revision = None
branch_labels = ("experiments",)
depends_on = None


def _now() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("task_type", sa.Text, nullable=False),
        sa.Column("definition", postgresql.JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("salt", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("decision", postgresql.JSONB),
        sa.CheckConstraint(
            "status IN ('draft', 'running', 'stopped', 'decided')", name="experiments_status"
        ),
    )
    op.create_index("experiments_task_type", "experiments", ["task_type"])
    op.create_table(
        "experiment_audit",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "experiment_id",
            sa.Text,
            sa.ForeignKey("experiments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _now(),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("details", postgresql.JSONB, nullable=False),
    )
    op.create_index("experiment_audit_by_experiment", "experiment_audit", ["experiment_id", "id"])
    op.create_table(
        "experiment_task_types",
        sa.Column("task_type", sa.Text, primary_key=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )


def downgrade() -> None:
    op.drop_table("experiment_task_types")
    op.drop_table("experiment_audit")
    op.drop_table("experiments")
