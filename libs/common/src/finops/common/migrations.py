"""Database migrations with Alembic, one version table per service.

A service that owns tables keeps an Alembic script folder at ``finops.<service>.migrations``;
:func:`upgrade` and :func:`downgrade` run it programmatically (no alembic.ini).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

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
    """The services a migration to ``revision`` concerns: every one for ``head``, ``heads``,
    ``base`` or a relative step (``-1``, ``head-1``), the service of a branch label
    (``optimizer@base``), the one holding a revision id or a prefix of one (``opt0002``,
    ``opt0002+1``); none for anything else.  Each service has its own revision ids and its
    own history, so a target another service does not know must not reach it: asked for
    ``optimizer@base``, auth's Alembic, which has no such label, would go down to its base.

    Examples
    --------
    >>> services_knowing("-1") == services_with_migrations()
    True
    >>> services_knowing("optimizer@base"), services_knowing("heal0004"), services_knowing("--hlep")
    (['optimizer'], ['healer'], [])
    """
    unstepped = _RELATIVE_STEP.sub("", revision)
    if revision and unstepped in ("", "head", "heads", "base"):  # '-1', 'head', 'head-1'
        return services_with_migrations()
    label, at, _target = revision.partition("@")

    def knows(script: Script) -> bool:
        return label in script.branch_labels if at else script.revision.startswith(unstepped)

    return [
        service
        for service in services_with_migrations()
        if unstepped and any(map(knows, _scripts(service).walk_revisions()))
    ]


#: a step from the current revision, or from a named one (``opt0002+1``)
_RELATIVE_STEP = re.compile(r"[+-]\d+$")


def _scripts(service: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(service, "postgresql://localhost/"))


def upgrade(database_url: str, revision: str = "head", services: list[str] | None = None) -> None:
    for service in services or services_with_migrations():
        command.upgrade(alembic_config(service, database_url), revision)


def downgrade(database_url: str, revision: str, services: list[str] | None = None) -> None:
    for service in services or services_with_migrations():
        command.downgrade(alembic_config(service, database_url), revision)
