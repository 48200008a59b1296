"""Outcome files (``.csv`` or ``.csv.gz``) read into :class:`.backtest.Outcomes` rows.

Columns: ``prompt_id, task_type, model, quality, cost_usd[, input_tokens, output_tokens,
prompt]``, exactly one row per ``(prompt, model)``: every prompt has a row for every model.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator
from pathlib import Path

from finops.common.events.schemas.fields import MAX_USD
from finops.optimizer.domain.backtest import Outcomes

__all__ = ["load_outcomes"]


def _open_text(path: str | Path) -> io.TextIOBase:
    """The file as text; a UTF-8 byte order mark (a CSV saved by Excel) is skipped, where it
    read as part of the first column's name ("it has no prompt_id column")."""
    p = str(path)
    if p.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8-sig", newline="")
    return open(p, encoding="utf-8-sig", newline="")


def load_outcomes(path: str | Path) -> Outcomes:
    """Read an outcomes file (file order of prompts kept).

    A row whose ``quality`` is not a number from 0 to 1, whose ``cost_usd`` is not one from 0
    to 1,000,000, or whose ``input_tokens`` or ``output_tokens`` is not a number of 0 or more,
    or with an empty ``prompt_id``, ``task_type`` or ``model``, raises ``ValueError`` naming
    its line and field: a replay over it would report figures that mean nothing.
    So does a second row of the same ``(prompt_id, model)`` (which of the two would count?)
    and a prompt without a row for every model of the file: the best single model's and the
    per-prompt oracle's figures are only comparable over the same prompts and models (over
    rows missing here and there, the oracle can come out worse than the best model).
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
    >>> rows = io.StringIO("prompt_id,task_type,model,quality,cost_usd\\np,t,m,0.9,0.1,x\\n")
    >>> list(_checked(csv.DictReader(rows)))
    Traceback (most recent call last):
    ...
    ValueError: line 2: 6 fields where the header names 5 columns
    """
    line = 1  # the header's
    seen: dict[tuple[str, str], int] = {}  # (prompt, model) -> its line
    first_line: dict[str, int] = {}  # prompt -> the line of its first row
    for row in reader:
        start, line = line + 1, reader.line_num  # a quoted prompt may span several lines
        extra = row.get(None)  # type: ignore[call-overload]  # DictReader's restkey
        if extra:
            columns = len(reader.fieldnames or ())
            raise ValueError(
                f"line {start}: {columns + len(extra)} fields where the header names "
                f"{columns} columns"
            )
        for field in _NAMES:
            if row.get(field) == "":  # a missing column: Outcomes.from_rows names the first one
                raise ValueError(f"line {start}: {field} is empty")
        prompt, model = row.get("prompt_id"), row.get("model")
        if prompt is not None and model is not None:  # else Outcomes.from_rows names it
            twin = seen.setdefault((prompt, model), start)
            if twin != start:
                raise ValueError(
                    f"line {start}: prompt {prompt} has a second row for model {model} "
                    f"(the first is line {twin}); give one row per prompt and model"
                )
            first_line.setdefault(prompt, start)
        for field, low, high in _RANGES:
            value = row.get(field)
            if value is None or (value == "" and field not in _REQUIRED):
                continue  # a missing column: Outcomes.from_rows names the first one
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not (math.isfinite(number) and low <= number <= high):
                top = f"{high:,.0f}" if high.is_integer() else f"{high:g}"
                what = f"from {low:g} to {top}" if high < math.inf else f"of {low:g} or more"
                shown = value or "(empty)"
                raise ValueError(f"line {start}: {field} {shown} is not a number {what}")
        yield row
    _check_complete(seen, first_line)


def _check_complete(seen: dict[tuple[str, str], int], first_line: dict[str, int]) -> None:
    """Raise ``ValueError`` for the first prompt (in file order) lacking a row for a model.

    Examples
    --------
    >>> _check_complete({("p1", "a"): 2, ("p2", "b"): 3}, {"p1": 2, "p2": 3})
    Traceback (most recent call last):
    ...
    ValueError: line 2: prompt p1 has no row for model b; each prompt needs a row per model: a, b
    """
    models = sorted({model for _, model in seen})
    for prompt, line in first_line.items():
        for model in models:
            if (prompt, model) not in seen:
                raise ValueError(
                    f"line {line}: prompt {prompt} has no row for model {model}; each prompt "
                    f"needs a row per model: {', '.join(models)}"
                )


#: the numeric columns and the values each may take
_RANGES = (
    ("quality", 0.0, 1.0),
    # at most an event's cost_usd: the sums of dearer ones overflowed to inf, and --json printed
    # Infinity, which is not JSON
    ("cost_usd", 0.0, float(MAX_USD)),
    ("input_tokens", 0.0, math.inf),
    ("output_tokens", 0.0, math.inf),
)
_REQUIRED = {"quality", "cost_usd"}
#: the columns that name a row: an empty one is refused (an empty model read as a model "")
_NAMES = ("prompt_id", "task_type", "model")
