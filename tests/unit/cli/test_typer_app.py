"""The examples in ``finops.cli.typer_app``'s docstrings run."""

from __future__ import annotations
