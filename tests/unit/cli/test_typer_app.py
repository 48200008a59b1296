"""The examples in ``finops.cli.typer_app``'s docstrings run."""

from __future__ import annotations

import doctest

from finops.cli import typer_app


def test_docstring_examples_run() -> None:
    result = doctest.testmod(typer_app)
    assert result.attempted > 0
    assert result.failed == 0
