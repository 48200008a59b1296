"""users: accounts with a unique username and a case-insensitively unique email

Revision ID: 0001_users
Revises:
Create Date: 2025-11-29
"""

from alembic import op

revision = "0001_users"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            username text NOT NULL,
            email text NOT NULL,
            hashed_password text NOT NULL,
            role text NOT NULL DEFAULT 'agent',
            is_active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            CONSTRAINT users_username_key UNIQUE (username),
            CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9_.-]{3,32}$'),
            CONSTRAINT users_role_known CHECK (role IN ('agent', 'operator', 'admin'))
        )
        """
    )
    # Case-insensitive uniqueness without the citext extension; login by email uses it too.
    op.execute("CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email))")
    op.execute(
        """
        CREATE FUNCTION auth_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := clock_timestamp();
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON users"
        " FOR EACH ROW EXECUTE FUNCTION auth_touch_updated_at()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE users")
    op.execute("DROP FUNCTION auth_touch_updated_at()")
