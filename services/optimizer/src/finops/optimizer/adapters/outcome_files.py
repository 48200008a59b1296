"""Outcome files (``.csv`` or ``.csv.gz``) read into :class:`.backtest.Outcomes` rows.

Columns: ``prompt_id, task_type, model, quality, cost_usd[, input_tokens, output_tokens,
prompt]``, one row per ``(prompt, model)``.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from finops.optimizer.domain.backtest import Outcomes

__all__ = ["load_outcomes"]


def _open_text(path: str | Path) -> io.TextIOBase:
    p = str(path)
    if p.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", newline="")
    return open(p, encoding="utf-8", newline="")


def load_outcomes(path: str | Path) -> Outcomes:
    """Read an outcomes file (file order of prompts kept)."""
    with _open_text(path) as fh:
        return Outcomes.from_rows(csv.DictReader(fh))
