"""refresh_tokens (rotating families) and api_keys (hashed, revocable)

Revision ID: 0002_refresh_tokens_api_keys
Revises: 0001_users
Create Date: 2025-11-29
"""

from alembic import op

revision = "0002_refresh_tokens_api_keys"
down_revision = "0001_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE refresh_tokens (
            id uuid PRIMARY KEY,
            family_id uuid NOT NULL,
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            token_hash text NOT NULL,
            scope text NOT NULL,
            access_jti text NOT NULL,
            issued_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            used_at timestamptz,
            revoked_at timestamptz,
            CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
        )
        """
    )
    op.execute("CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id)")
    op.execute("CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id)")
    op.execute("CREATE INDEX refresh_tokens_access_jti_idx ON refresh_tokens (access_jti)")
    op.execute(
        """
        CREATE TABLE api_keys (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created_by uuid REFERENCES users (id) ON DELETE SET NULL,
            name text NOT NULL,
            prefix text NOT NULL,
            key_hash text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            last_used_at timestamptz,
            revoked_at timestamptz,
            CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
        )
        """
    )
    op.execute("CREATE INDEX api_keys_user_idx ON api_keys (user_id)")
    op.execute("CREATE INDEX api_keys_created_by_idx ON api_keys (created_by)")


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
    op.execute("DROP TABLE refresh_tokens")
