"""refresh_tokens: index on expires_at, for the periodic deletion of expired tokens

Revision ID: 0003_refresh_tokens_expiry_idx
Revises: 0002_refresh_tokens_api_keys
Create Date: 2025-12-01
"""

from alembic import op

revision = "0003_refresh_tokens_expiry_idx"
down_revision = "0002_refresh_tokens_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at)")


def downgrade() -> None:
    op.execute("DROP INDEX refresh_tokens_expires_at_idx")
