"""The ``finops`` command's Typer classes: one error handler for every command, plain help.

:class:`FinopsTyper` is a ``typer.Typer`` whose groups turn every failure the user can fix
into one line on stderr (see :mod:`finops.cli.failures`), a command line they cannot parse
included (:func:`usage_line`), and whose commands list flags in ``--help`` without a
``<bool>`` value they do not take.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.exceptions import Abort, Exit, TyperException

from finops.cli.failures import explain
from finops.cli.output import print_error


class _FlagsTakeNoValue:
    """Help lists ``--json``, not ``--json <bool>``: a flag takes no value."""

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


def usage_line(error: UsageError, ctx: Any = None) -> str:
    """Click's report of a command line it cannot parse, as one line with where to look.

    Examples
    --------
    >>> import typer
    >>> from typer._click.exceptions import NoSuchOption
    >>> ctx = typer.Context(TyperCommand("tail"), info_name="finops tail")
    >>> print(usage_line(NoSuchOption("--bogus", ctx=ctx)))
    no such option: --bogus (see `finops tail --help`)
    """
    message = " ".join(error.format_message().split()).removesuffix(".")
    message = message[:1].lower() + message[1:]
    ctx = error.ctx or ctx  # the parser raises some without their context
    if ctx is None:
        return message
    return f"{message} (see `{ctx.command_path} {ctx.help_option_names[0]}`)"


def _report_usage_error(error: UsageError, ctx: Any = None) -> Exit:
    if isinstance(error, NoArgsIsHelpError):
        raise error  # Typer shows the help, as `no_args_is_help` asks
    print_error(usage_line(error, ctx))
    return Exit(error.exit_code)


class _UsageErrorsInOneLine:
    """A command line this command cannot parse is one ``error:`` line, not Click's panel:
    while parsing, and while running (a BadParameter a command raises itself, a group's
    unknown command)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc,no-any-return]
        except UsageError as error:
            raise _report_usage_error(error, ctx) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except UsageError as error:
            raise _report_usage_error(error, ctx) from None


class FinopsCommand(_UsageErrorsInOneLine, _FlagsTakeNoValue, TyperCommand):
    pass


class FinopsGroup(_UsageErrorsInOneLine, _FlagsTakeNoValue, TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        # The CLI reports an unreachable broker itself, in one line; aiokafka would also log
        # every failed connection attempt.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        try:
            return super().invoke(ctx)
        except (Exit, Abort, TyperException):
            raise
        except Exception as exc:
            failure = explain(exc)
            if failure is None:
                raise  # not the user's to fix: keep the traceback
            print_error(failure.message)
            raise typer.Exit(failure.code) from None


class FinopsTyper(typer.Typer):
    """A Typer app (or sub-app) of the ``finops`` command."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", FinopsGroup)
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("add_completion", False)
        super().__init__(**kwargs)

    def command(  # type: ignore[override]
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[Any], Any]:
        def register(function: Callable[..., Any]) -> Any:
            options = {
                **kwargs,
                "help": kwargs.get("help") or rewrapped(inspect.getdoc(function) or ""),
            }
            command = super(FinopsTyper, self).command
            return command(name, cls=cls or FinopsCommand, **options)(function)

        return register


def positive_seconds(value: float | None) -> float | None:
    """Callback of an option of seconds that must be more than 0 and finite (a usage error
    otherwise: ``--idle-timeout inf`` made `finops reprice` wait for ever).

    Examples
    --------
    >>> positive_seconds(0.5), positive_seconds(None)
    (0.5, None)
    >>> positive_seconds(0)
    Traceback (most recent call last):
    ...
    typer._click.exceptions.BadParameter: must be more than 0 seconds, got 0
    >>> positive_seconds(float("inf"))
    Traceback (most recent call last):
    ...
    typer._click.exceptions.BadParameter: must be a finite number of seconds, got inf
    """
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be more than 0 seconds, got {value}")
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number of seconds, got {value}")
    return value


def rewrapped(docstring: str) -> str:
    r"""``docstring`` with each paragraph on one line, for the terminal to wrap: Typer's help
    keeps a docstring's line breaks, which broke sentences in the middle (and a command's
    summary in the list of commands).  A paragraph of indented lines, an example, or one that
    starts with Click's ``\b`` is kept as it is.

    Examples
    --------
    >>> rewrapped("Start the stack.\n\nWaits until each component\nis ready.\n\n    finops up -d")
    'Start the stack.\n\nWaits until each component is ready.\n\n    finops up -d'
    """
    paragraphs = docstring.split("\n\n")
    return "\n\n".join(
        p if p.startswith(("\b", " ")) else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


#: ``--json``: the command prints one JSON object, its result, instead of text
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
#: ``--idle-timeout``: a read of a topic ends after this many seconds without a record
IdleTimeoutOption = Annotated[
    float,
    typer.Option(
        callback=positive_seconds,
        help="Stop reading a topic after this many quiet seconds (more than 0).",
    ),
]
