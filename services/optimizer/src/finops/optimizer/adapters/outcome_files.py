"""Outcome files (``.csv`` or ``.csv.gz``) read into :class:`.backtest.Outcomes` rows.

Columns: ``prompt_id, task_type, model, quality, cost_usd[, input_tokens, output_tokens,
prompt]``, one row per ``(prompt, model)``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator
from pathlib import Path

from finops.optimizer.domain.backtest import Outcomes

__all__ = ["load_outcomes"]


def _open_text(path: str | Path) -> io.TextIOBase:
    p = str(path)
    if p.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", newline="")
    return open(p, encoding="utf-8", newline="")


def load_outcomes(path: str | Path) -> Outcomes:
    """Read an outcomes file (file order of prompts kept).

    A row whose ``quality`` is not a number from 0 to 1, or whose ``cost_usd`` (or
    ``input_tokens``, ``output_tokens``) is not a number of 0 or more, raises ``ValueError``
    naming its line and field: a replay over it would report figures that mean nothing.
    """
    with _open_text(path) as fh:
        return Outcomes.from_rows(_checked(csv.DictReader(fh)))


def _checked(reader: csv.DictReader[str]) -> Iterator[dict[str, str | None]]:
    """The rows of ``reader``, each checked (see :func:`load_outcomes`).

    Examples
    --------
    >>> rows = io.StringIO("prompt_id,task_type,model,quality,cost_usd\\np,t,m,7,0.1\\n")
    >>> list(_checked(csv.DictReader(rows)))
    Traceback (most recent call last):
    ...
    ValueError: line 2: quality 7 is not a number from 0 to 1
    """
    line = 1  # the header's
    for row in reader:
        start, line = line + 1, reader.line_num  # a quoted prompt may span several lines
        for field, low, high in _RANGES:
            value = row.get(field)
            if value is None or (value == "" and field not in _REQUIRED):
                continue  # a missing column: Outcomes.from_rows names the first one
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not (math.isfinite(number) and low <= number <= high):
                what = f"from {low:g} to {high:g}" if high < math.inf else f"of {low:g} or more"
                shown = value or "(empty)"
                raise ValueError(f"line {start}: {field} {shown} is not a number {what}")
        yield row


#: the numeric columns and the values each may take
_RANGES = (
    ("quality", 0.0, 1.0),
    ("cost_usd", 0.0, math.inf),
    ("input_tokens", 0.0, math.inf),
    ("output_tokens", 0.0, math.inf),
)
_REQUIRED = {"quality", "cost_usd"}
