"""Consoles of the ``finops`` command: lines never wrap, piped tables keep their width.

On a terminal, rich fits output to the window. Piped (``| grep``, ``> file``) it would wrap
every line and squeeze every table to 80 columns; a :class:`CliConsole` instead prints each
line whole and each table at its natural width, unless ``COLUMNS`` says otherwise.
"""

from __future__ import annotations

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
