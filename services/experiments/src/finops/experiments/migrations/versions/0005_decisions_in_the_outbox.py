"""decisions in the outbox: from this revision on, the analysis records each conclusion as an
audit row (action ``decided`` or ``stopped``) that the publisher announces, instead of
announcing it itself. The schema does not change; the revision marks the version that writes
those rows. A downgrade is refused while one waits to be announced: the code of exp0004
announces only an operator's starts and stops, so it would stay unannounced for good.

Revision ID: exp0005
Revises: exp0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "exp0005"
down_revision = "exp0004"
branch_labels = None
depends_on = None

#: the audit actions of the analysis's conclusions (an operator's are "start" and "stop")
DECISIONS = ("decided", "stopped")


def upgrade() -> None:
    """Nothing to change: the rows fit the outbox of exp0004."""


def downgrade() -> None:
    waiting = op.get_bind().execute(
        sa.text(
            "SELECT count(*) FROM experiment_audit "
            "WHERE announced_at IS NULL AND action = ANY(:actions)"
        ),
        {"actions": list(DECISIONS)},
    )
    if waiting.scalar():
        raise RuntimeError(
            "decisions of experiments wait to be announced on their topic: start the "
            "experiments service of this version until they are, then downgrade"
        )
