"""Consoles of the ``finops`` command: lines never wrap, piped tables keep their width.

On a terminal, rich fits output to the window. Piped (``| grep``, ``> file``) it would wrap
every line and squeeze every table to 80 columns; a :class:`CliConsole` instead prints each
line whole and each table at its natural width, unless ``COLUMNS`` says otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.text import Text

#: the width of piped output: wide enough for any table, never reached by plain lines
PIPE_WIDTH = 10_000


class CliConsole(Console):
    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, soft_wrap=True)

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)  # type: ignore[attr-defined]
        if self.is_terminal or "COLUMNS" in self._environ:
            return size  # type: ignore[no-any-return]
        return ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = CliConsole()
err_console = CliConsole(stderr=True)


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, as one line (the message is not read as markup)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message))


def printable(value: Any) -> str:
    """A value from the platform's data (an agent's task type, model or team) as the CLI prints
    it: as it is, unless it holds a character that is not printable (a line break, a terminal
    escape, a bidi override), then JSON-quoted, ASCII only.

    Ingest takes such characters in an agent's strings (only NUL is refused): printed raw,
    ``task_type="qa\\nagent.cost.v1[0]@99 agent_id=admin"`` forged a second line of
    ``finops tail``, and ``\\x1b[31m`` coloured the operator's terminal.

    >>> printable("gpt-4o"), printable(0.5), printable("qa\\nx"), printable("m\\x1b[31m")
    ('gpt-4o', '0.5', '"qa\\\\nx"', '"m\\\\u001b[31m"')
    >>> printable("a\\u202eb")
    '"a\\\\u202eb"'
    """
    text = str(value)
    return text if text.isprintable() else json.dumps(text)


def data_cell(value: Any) -> Text:
    """:func:`printable`, for a table cell: a :class:`Text`, so ``[bold]`` or ``[link=…]`` in
    an agent's model name is shown, not read as markup."""
    return Text(printable(value))
