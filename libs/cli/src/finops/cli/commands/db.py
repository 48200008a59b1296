"""`finops db …`: the services' database schemas (Alembic)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Annotated

import typer

from finops.cli.failures import POSTGRESQL, CliError, database_refused
from finops.cli.output import console
from finops.cli.typer_app import FinopsTyper, positive_seconds

db_app = FinopsTyper(help="Database schema migrations (Alembic).")


#: a step back, for every service or one (``-1``, ``optimizer@-2``)
_STEP_BACK = re.compile(r"(?:[a-z]+@)?-\d+")


# ignore_unknown_options: `-1` reaches the command as a revision, to be refused in its words,
# not as "no such option: -1"
@db_app.command("upgrade", context_settings={"ignore_unknown_options": True})
def db_upgrade(
    revision: Annotated[
        str,
        typer.Argument(
            metavar="REVISION", help="Target revision: head, +1, a revision id, SERVICE@REVISION."
        ),
    ] = "head",
) -> None:
    """Apply the migrations of the services with a database schema (auth, experiments,
    optimizer and healer) up to REVISION.

    REVISION is head (every service's latest, the default) or a step such as +1, for every
    service; a revision id or the start of one, such as exp0004 or heal0002+1, for the
    service it belongs to (each service has its own); or SERVICE@REVISION, such as
    optimizer@head, SERVICE being experiments, optimizer or healer."""
    from finops.common import migrations

    _refuse_option(revision, "upgrade")
    if _STEP_BACK.fullmatch(revision):
        raise CliError(
            f"{revision} is a step back: `finops db upgrade` goes forward (head, +1, a"
            f" revision); to go back, `finops db downgrade {revision}`",
            2,
        )
    before = _revisions(migrations.services_knowing(revision))
    done = _migrate(migrations.upgrade, revision)
    console.print(_said("migrated", before, done), soft_wrap=True)


@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(
    revision: Annotated[
        str,
        typer.Argument(
            metavar="REVISION", help="Target revision: base, -1, a revision id, SERVICE@REVISION."
        ),
    ],
) -> None:
    """Revert the migrations of the services with a database schema (auth, experiments,
    optimizer and healer) down to REVISION.

    REVISION is base (no schema left; the optimizer keeps its settings ledger's number
    sequence, optimizer_settings_seq) or a step such as -1, for every service; a revision id
    or the start of one, such as exp0003 or heal0004-1, for the service it belongs to (each
    service has its own); or SERVICE@REVISION, such as optimizer@base, SERVICE being
    experiments, optimizer or healer."""
    from finops.common import migrations

    _refuse_option(revision, "downgrade")
    before = _revisions(migrations.services_knowing(revision))
    done = _migrate(migrations.downgrade, revision)
    console.print(_said("downgraded", before, done), soft_wrap=True)


def _refuse_option(revision: str, command: str) -> None:
    """An unknown option, which the command's steps (``-1``) let through as a revision, is a
    usage error as elsewhere, not a revision no service has."""
    if revision.startswith("--"):
        raise CliError(f"no such option: {revision} (see `finops db {command} --help`)", 2)


def _migrate(step: Callable[[str, str, list[str]], None], revision: str) -> list[str]:
    """Run ``step`` (upgrade or downgrade) to ``revision`` on the services it concerns
    (:func:`finops.common.migrations.services_knowing`), one after the other; a revision
    Alembic cannot use is one line naming the service and those already done."""
    from alembic.util.exc import CommandError

    from finops.common import migrations
    from finops.common.settings import CommonSettings

    services = migrations.services_knowing(revision)
    label, at, _ = revision.partition("@")
    if not services and at and label in migrations.services_with_migrations():
        labelled = migrations.services_with_branch_label()
        raise CliError(
            f"{label}'s migrations have no {label}@REVISION form (only "
            f"{', '.join(labelled[:-1])} and {labelled[-1]} have one): give one of its revision"
            f" ids, such as {migrations.heads(label)[0]}, or head, base or a step for every"
            " service",
            2,
        )
    if not services:
        raise CliError(
            f"no service has the revision {revision!r}: give head, base, a step such as -1, a"
            " service's revision id, or SERVICE@REVISION",
            2,
        )
    url = CommonSettings().database_url
    done: list[str] = []
    for service in services:
        try:
            step(url, revision, [service])
        except CommandError as exc:
            before = f" ({', '.join(done)} done)" if done else ""
            if str(exc).startswith("Relative revision"):  # Alembic: +1 at head, -1 at base
                raise CliError(
                    f"{service}: there is no migration {revision} from where its schema is"
                    f"{before} — give head, base or a step it has (see `finops db --help`)",
                    2,
                ) from exc
            raise CliError(f"{service}: {exc}{before}", 2) from exc
        done.append(service)
    return done


def _revisions(services: list[str]) -> dict[str, tuple[str, ...]]:
    """Each service's revisions in the database now (empty when unreachable: the migration
    then says why)."""
    from finops.common import migrations
    from finops.common.settings import CommonSettings

    try:
        return asyncio.run(migrations.current_revisions(CommonSettings().database_url, services))
    except Exception:  # the migration itself names what is wrong
        return {}


def _said(verb: str, before: dict[str, tuple[str, ...]], services: list[str]) -> str:
    """``migrated auth to X, optimizer already at Y``: a service whose schema did not move
    is said to be where it already was, not to have been migrated."""
    after = _revisions(services)
    moved = [s for s in services if s not in before or before[s] != after.get(s)]
    parts = [
        f"{s} {'to' if s in moved else 'already at'} "
        f"{', '.join(after.get(s, ())) or 'base (no schema)'}"
        for s in services
    ]
    return f"{verb} {', '.join(parts)}" if moved else f"nothing to do: {', '.join(parts)}"


def _reached(services: list[str]) -> str:
    """``auth to 0004_users_insert_updated_at, optimizer to base``: where each service's
    schema is now, read back from the database."""
    from finops.common import migrations
    from finops.common.settings import CommonSettings

    url = CommonSettings().database_url
    reached = asyncio.run(migrations.current_revisions(url, services))
    return ", ".join(
        f"{service} to {', '.join(reached[service]) or 'base (no schema)'}" for service in services
    )


@db_app.command("wait")
def db_wait(
    services: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SERVICE",
            help="auth, experiments, optimizer or healer (default: every one).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", callback=positive_seconds, help="Give up after this many seconds."
        ),
    ] = 300.0,
) -> None:
    """Wait until each SERVICE's schema is at this code's head; exit 1 after --timeout.

    Creates and changes nothing: someone else migrates (`finops db upgrade`, the migration
    Job on Kubernetes). The Kubernetes pods run it first, so that new code does not start on
    an old schema; a schema newer than this code knows counts as at head."""
    import asyncpg

    from finops.common import migrations
    from finops.common.settings import CommonSettings

    known = migrations.services_with_migrations()
    unknown = [service for service in services or [] if service not in known]
    if unknown:
        raise CliError(
            f"no schema of {', '.join(map(repr, unknown))}: the services with one are "
            f"{', '.join(known)}",
            2,
        )
    wanted = services or known
    url = CommonSettings().database_url
    try:
        behind = asyncio.run(migrations.wait_for_schemas(url, wanted, timeout_s=timeout))
    except asyncpg.PostgresError as exc:  # a wrong password, no such database: no use waiting
        raise database_refused(exc) from exc
    if behind and not any(schema.answered for schema in behind):
        raise POSTGRESQL.unreachable(waited_s=timeout)
    if behind:
        still = "; ".join(map(str, behind))
        raise CliError(f"schemas still behind after {timeout:g} s: {still}", 1)
    console.print(f"schemas at head: {', '.join(wanted)}")
