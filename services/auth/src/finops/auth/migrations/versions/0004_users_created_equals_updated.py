"""users: a new row's updated_at is its created_at

The two columns defaulted to two calls of clock_timestamp(), which can be a microsecond apart:
a user never updated looked updated. A BEFORE INSERT trigger copies created_at.

Revision ID: 0004_users_insert_updated_at
Revises: 0003_refresh_tokens_expiry_idx
Create Date: 2026-12-02
"""

from alembic import op

revision = "0004_users_insert_updated_at"
down_revision = "0003_refresh_tokens_expiry_idx"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION auth_insert_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := NEW.created_at;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER users_insert_updated_at BEFORE INSERT ON users"
        " FOR EACH ROW EXECUTE FUNCTION auth_insert_updated_at()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER users_insert_updated_at ON users")
    op.execute("DROP FUNCTION auth_insert_updated_at()")
