"""Database migrations with Alembic, one version table per service.

A service that owns tables keeps an Alembic script folder at ``finops.<service>.migrations``;
:func:`upgrade` and :func:`downgrade` run it programmatically (no alembic.ini).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config

SERVICES_WITH_MIGRATIONS_CANDIDATES = ("auth", "experiments", "optimizer", "healer")


def sqlalchemy_url(database_url: str) -> str:
    """asyncpg-style ``postgresql://`` URL → SQLAlchemy's ``postgresql+asyncpg://``."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+asyncpg://" + database_url[len(prefix) :]
    return database_url


def migration_dir(service: str) -> Path | None:
    spec = importlib.util.find_spec(f"finops.{service}")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "migrations"
    return folder if (folder / "env.py").exists() else None


def services_with_migrations() -> list[str]:
    return [s for s in SERVICES_WITH_MIGRATIONS_CANDIDATES if migration_dir(s)]


def alembic_config(service: str, database_url: str) -> Config:
    folder = migration_dir(service)
    if folder is None:
        raise LookupError(f"service {service!r} has no migrations")
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    cfg.attributes["version_table"] = f"alembic_version_{service}"
    return cfg


def services_knowing(revision: str) -> list[str]:
    """The services whose migrations resolve ``revision`` without a database: all of them for
    ``head``, ``base`` or ``-1``, one for a revision id (each service has its own ids)."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    known = []
    for service in services_with_migrations():
        scripts = ScriptDirectory.from_config(alembic_config(service, "postgresql://localhost/"))
        try:
            scripts.get_revisions(revision)
        except CommandError:
            continue
        known.append(service)
    return known


def upgrade(database_url: str, revision: str = "head", services: list[str] | None = None) -> None:
    for service in services or services_with_migrations():
        command.upgrade(alembic_config(service, database_url), revision)


def downgrade(database_url: str, revision: str, services: list[str] | None = None) -> None:
    for service in services or services_with_migrations():
        command.downgrade(alembic_config(service, database_url), revision)
