from finops.common.alembic_env import run_migrations

run_migrations()
