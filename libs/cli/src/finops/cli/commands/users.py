"""``finops users`` and ``finops keys``: accounts and signing keys, written straight to the
database and the key folder (no running service needed)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Annotated

import typer

from finops.cli.failures import CliError
from finops.cli.output import console, err_console, print_error
from finops.cli.typer_app import FinopsTyper

users_app = FinopsTyper(
    help="User accounts, written straight to the database (no running service needed)."
)
keys_app = FinopsTyper(help="The auth service's token signing keys.")


ROLES = ("agent", "operator", "admin")


@users_app.command("create")
def users_create(
    username: Annotated[
        str, typer.Option(help="3-32 characters of a-z, 0-9, '_', '.', '-'.", show_default=False)
    ],
    email: Annotated[str, typer.Option(help="Email address (unique).", show_default=False)],
    password: Annotated[
        str | None,
        typer.Option(
            help="The password. Visible in shell history and `ps`: prefer --password-stdin "
            "or the prompt you get when neither is given.",
            show_default=False,
        ),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
    ] = False,
    role: Annotated[
        str, typer.Option(help=f"One of: {', '.join(ROLES)}. Use admin for the first admin.")
    ] = "agent",
    teams: Annotated[
        list[str] | None,
        typer.Option(
            "--team",
            help="Bind the account to this team (repeat for several): its events and "
            "recommendations may name only these teams. Without it, any team.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create a user in the database with the same rules as registration.

    This is how the first admin is made (public registration only creates agents):

      finops users create --username alice --email alice@example.com --role admin

    An agent that may spend only its teams' budgets (an admin changes them later with
    `PUT /api/users/{id}/teams`):

      finops users create --username bot1 --email bot1@example.com --team finance

    Uses the local stack's PostgreSQL (`finops up`) unless FINOPS_DATABASE_URL is set; the
    schema must be migrated (`finops db upgrade`).
    """
    from finops.auth.admin import create_user
    from finops.auth.domain.errors import AccountInvalid, EmailTaken, TeamsInvalid, UsernameTaken
    from finops.auth.domain.policy import check_new_account
    from finops.auth.domain.teams import team_binding
    from finops.auth.settings import AccountSettings
    from finops.common.auth.scopes import Role

    if role not in ROLES:
        raise CliError(f"--role must be one of {', '.join(ROLES)}", 2)
    if role == "admin" and teams:
        raise CliError(
            "--team binds an account's events to its teams, but an admin's tokens"
            " (events:write:any) name any team: give --team to agents and operators",
            2,
        )
    password = _new_password(password, password_stdin)
    try:
        check_new_account(username, email, password)  # bad values: before reaching the database
        team_binding(teams)
        user = asyncio.run(
            create_user(AccountSettings(), username, email, password, Role(role), teams)
        )
    except (AccountInvalid, TeamsInvalid) as exc:
        for problem in exc.details:
            print_error(f"{problem['field']}: {problem['message']}")
        raise typer.Exit(2) from None
    except (UsernameTaken, EmailTaken) as exc:
        raise CliError(exc.message) from exc
    # soft_wrap: ids must stay on one line so they can be copied.
    bound = "" if user.teams is None else f", teams {', '.join(sorted(user.teams)) or '(none)'}"
    console.print(
        f"created user {user.username} (id {user.id}, role {user.role.value}{bound})",
        soft_wrap=True,
    )


def _new_password(given: str | None, from_stdin: bool) -> str:
    """The new user's password: ``--password``, the first line of stdin
    (``--password-stdin``), else asked for twice on the terminal; one line, exit 2, when
    both are given, stdin has none, or there is no terminal to ask on."""
    if given is not None and from_stdin:
        raise CliError("give either --password or --password-stdin, not both", 2)
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError(
                "no password on standard input (--password-stdin reads its first line)", 2
            )
        return password
    if given is not None:
        return given
    if not _terminal_to_prompt_on():
        raise CliError(
            "no terminal to ask for the password on: give it on stdin with --password-stdin", 2
        )
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _terminal_to_prompt_on() -> bool:
    """Whether a password can be asked for without echoing it: :func:`getpass.getpass` asks
    on the controlling terminal, else on stdin if that is a terminal (and otherwise reads
    stdin, with a ``GetPassWarning``)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return sys.stdin.isatty()
    os.close(fd)
    return True


@users_app.command("deactivate")
def users_deactivate(
    user: Annotated[
        str, typer.Argument(metavar="USER", help="Username, email or user id.", show_default=False)
    ],
) -> None:
    """Deactivate a user, as `POST /api/users/{id}/deactivate` does: every access token,
    refresh token and API key of it is refused on every service at once.

    Uses the local stack's PostgreSQL and Redis (`finops up`) unless FINOPS_DATABASE_URL and
    FINOPS_REDIS_URL are set.
    """
    from finops.auth.admin import deactivate_user
    from finops.auth.domain.errors import LastAdmin, UserNotFound
    from finops.auth.settings import AccountSettings

    try:
        done = asyncio.run(deactivate_user(AccountSettings(), user))
    except UserNotFound as exc:
        raise CliError(f"{exc.message}: {user!r} (a username, an email or a user id)") from exc
    except LastAdmin as exc:
        raise CliError(exc.message) from exc
    who = f"user {done.user.username} (id {done.user.id})"
    if done.already_inactive:
        console.print(f"{who} was deactivated already; nothing changed", soft_wrap=True)
    else:
        console.print(f"deactivated {who}", soft_wrap=True)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Generate a new signing key; the current one stays in the JWKS as the previous key.

    Keys live under <FINOPS_DATA_DIR>/keys/. Running auth services switch to the new key
    within FINOPS_KEY_RELOAD_SECONDS; tokens signed with the previous key keep verifying
    until they expire. The key before the previous one is dropped, so wait at least one
    token lifetime (15 min by default) between two rotations. Refused when the key comes
    from FINOPS_JWT_PRIVATE_KEY_PEM / _FILE (rotate it where it is configured), and when
    the folder holds no key yet (auth never ran with this FINOPS_DATA_DIR).
    """
    from finops.auth.adapters.keystore import KeyConfigurationError
    from finops.auth.admin import rotate_signing_keys, signing_key_to_drop
    from finops.auth.settings import AuthSettings

    settings = AuthSettings()
    try:
        to_drop = signing_key_to_drop(settings)
        ring = rotate_signing_keys(settings)
    except KeyConfigurationError as exc:
        raise CliError(str(exc)) from exc
    lifetime = max(settings.access_token_ttl_seconds, settings.api_key_token_ttl_seconds)
    if to_drop is not None and (since := time.time() - to_drop[1]) < lifetime:
        err_console.print(
            f"warning: the key dropped, {to_drop[0]}, signed tokens until {since:.0f} s ago:"
            f" those not yet expired (tokens live {lifetime} s) are refused from now on; leave"
            " one token lifetime between two rotations",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    console.print(f"new signing key {ring.current.kid}", soft_wrap=True)
    if ring.previous:
        console.print(f"previous key {ring.previous.kid} stays in the JWKS", soft_wrap=True)
    console.print(f"keys folder: {settings.keys_dir.resolve()}", soft_wrap=True)
