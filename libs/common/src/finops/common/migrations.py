"""Database migrations with Alembic, one version table per service.

A service that owns tables keeps an Alembic script folder at ``finops.<service>.migrations``;
:func:`upgrade` and :func:`downgrade` run it programmatically (no alembic.ini).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from finops.common.waiting import wait_until_none_left

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


def heads(service: str) -> tuple[str, ...]:
    """The revisions ``service``'s schema is at once migrated by this code."""
    return tuple(sorted(_scripts(service).get_heads()))


def version_table(service: str) -> str:
    """The table holding ``service``'s revision (each service has its own history)."""
    return f"alembic_version_{service}"


def alembic_config(service: str, database_url: str) -> Config:
    folder = migration_dir(service)
    if folder is None:
        raise LookupError(f"service {service!r} has no migrations")
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    cfg.attributes["version_table"] = version_table(service)
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


def services_with_branch_label() -> list[str]:
    """The services a ``SERVICE@REVISION`` target can name: those whose migrations carry
    their service's name as branch label (auth's do not)."""
    return [
        service
        for service in services_with_migrations()
        if any(service in script.branch_labels for script in _scripts(service).walk_revisions())
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


@dataclass(frozen=True)
class SchemaBehind:
    """A service whose schema is not at the head this code migrates to."""

    service: str
    #: the database's revisions; empty: no schema yet (or the database did not answer)
    current: tuple[str, ...]
    heads: tuple[str, ...]
    #: whether the database answered: ``False``, it was never reached, the schema is unknown
    answered: bool = True

    def __str__(self) -> str:
        if not self.answered:
            return f"{self.service} unknown (the database did not answer)"
        at = ", ".join(self.current) or "no schema"
        return f"{self.service} at {at}, head {', '.join(self.heads)}"


async def schemas_behind(database_url: str, services: list[str]) -> list[SchemaBehind]:
    """The services of ``services`` whose schema is behind this code's head, in that order.

    A revision this code does not know counts as ahead, not behind: the schema of a newer
    release, which an older one rolled back to runs beside (its migrations only add)."""
    connection = await asyncpg.connect(database_url)
    try:
        behind = []
        for service in services:
            scripts = _scripts(service)  # read once: its heads and every revision it knows
            head = tuple(sorted(scripts.get_heads()))
            current = await _current(connection, service)
            known = {script.revision for script in scripts.walk_revisions()}
            if current == head or (current and not set(current) <= known):
                continue
            behind.append(SchemaBehind(service, current, head))
        return behind
    finally:
        await connection.close()


async def current_revisions(database_url: str, services: list[str]) -> dict[str, tuple[str, ...]]:
    """The revisions each service's schema is at (empty: no schema, its base)."""
    connection = await asyncpg.connect(database_url)
    try:
        return {service: await _current(connection, service) for service in services}
    finally:
        await connection.close()


async def _current(connection: asyncpg.Connection, service: str) -> tuple[str, ...]:
    if not await connection.fetchval("SELECT to_regclass($1)", version_table(service)):
        return ()
    query = f'SELECT version_num FROM "{version_table(service)}"'  # noqa: S608 - our name
    return tuple(sorted(row["version_num"] for row in await connection.fetch(query)))


#: a database that may answer later: not up yet, starting, or full; a wrong password or a
#: database that does not exist will not, and ends the wait at once
NOT_ANSWERING_YET = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


async def wait_for_schemas(
    database_url: str, services: list[str], *, timeout_s: float, poll_s: float = 2.0
) -> list[SchemaBehind]:
    """Wait until every service of ``services`` has its schema at this code's head, migrated
    by someone else (the migration Job on Kubernetes); return those still behind after
    ``timeout_s`` (empty: none). A database that does not answer yet is asked again (those
    returned are not ``answered`` if it never did); any other database error is raised."""
    return await wait_until_none_left(
        lambda: schemas_behind(database_url, services),
        unanswered=[SchemaBehind(service, (), heads(service), False) for service in services],
        unreachable=NOT_ANSWERING_YET,
        timeout_s=timeout_s,
        poll_s=poll_s,
    )
