"""users: teams, the team names an account's events may carry (NULL: any team)

An admin binds an account to its teams (PUT /api/users/{id}/teams); its access tokens carry
them, and ingest and the optimizer refuse any other team. Existing accounts stay unbound.

Revision ID: 0005_users_teams
Revises: 0004_users_insert_updated_at
Create Date: 2026-12-07
"""

from alembic import op

revision = "0005_users_teams"
down_revision = "0004_users_insert_updated_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE users ADD COLUMN teams text[]")
    # The service checks each name (finops.auth.domain.teams); the table keeps the bounds.
    op.execute(
        "ALTER TABLE users ADD CONSTRAINT users_teams_bounded CHECK"
        " (teams IS NULL OR (cardinality(teams) <= 32 AND array_position(teams, NULL) IS NULL))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE users DROP COLUMN teams")
