"""The ``finops`` command: run the local stack and operate the platform."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.text import Text

from finops.cli.commands import stack as stack_commands
from finops.cli.commands.db import db_app
from finops.cli.commands.users import keys_app, users_app
from finops.cli.failures import fill_in
from finops.cli.output import console, err_console
from finops.cli.stack.local_stack import StackSettings
from finops.cli.typer_app import FinopsTyper
from finops.common.settings import known_settings, unknown_settings

app = FinopsTyper(help="Meta-Agent FinOps: run the local stack and operate the platform.")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        console.print(f"finops {version('finops-cli')}")
        raise typer.Exit()


@app.callback()
def _client_addresses(
    ctx: typer.Context,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Operator commands reach the stack on the ports it was started with
    (``FINOPS_<COMPONENT>_PORT``) unless a ``FINOPS_*_URL`` says otherwise."""
    for line in unknown_settings(os.environ, known_settings()):
        err_console.print(Text.assemble(("warning:", "bold yellow"), " ", line))
    if ctx.invoked_subcommand in stack_commands.STACK_COMMANDS:
        return
    fill_in(StackSettings().client_addresses())  # an error names what the user set, not these


def _register_operator_commands() -> None:
    from finops.cli.commands import (
        backtest,
        evaluate_policy,
        experiments,
        ops,
        report,
        reprice,
        simulate,
    )

    stack_commands.register(app)  # first: `finops --help` lists them first
    ops.register(app)
    backtest.register(app)
    evaluate_policy.register(app)
    experiments.register(app)
    reprice.register(app)
    simulate.register(app)
    report.register(app)


_register_operator_commands()


if __name__ == "__main__":
    app()
