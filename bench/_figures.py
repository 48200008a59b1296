"""The figures a benchmark script measures, each with its baseline and target, for `make bench`.

The contract between a script under ``bench/`` and the runner (``bench/_runner.py``):

* the script declares ``QUICK_ARGS = [...]`` at module level: the command-line arguments of a
  smoke run (seconds, not minutes; ``[]`` when its defaults are already quick). Only scripts
  that declare it are run by ``make bench``;
* it calls :func:`record` once per figure it measures. Each figure names the baseline measured
  in the same run and the target an issue sets for it; an ``events/s`` figure or baseline says
  how many samples it rests on (:class:`Measurement`), at least two;
* it may declare ``QUICK_SECONDS = ...``: about how long its smoke run takes, so that a quick
  run with ``--jobs`` starts the longest scripts first (a script without it starts first).

:func:`record` appends one JSON line to the file named by ``$BENCH_FIGURES`` (the runner sets
it), so a script that fails midway keeps the figures it had measured. Run by hand, without the
variable, a script records nothing and prints as before.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

FIGURES_FILE = "BENCH_FIGURES"


@dataclass(frozen=True)
class Measurement:
    """One measured quantity: ``value`` in ``unit`` (``"events/s"``, ``"ms"``, ``"x"``...).

    ``samples``, for a rate: how many steps of progress it was read over (the scrapes of a
    counter or the batches of a consumer that saw it advance after the first, the requests or
    events acknowledged). Every ``events/s`` figure gives it: a counter that jumps from its
    first reading to the end in one step gives no rate at all (see ``_rates.Progress``).
    """

    label: str
    value: float
    unit: str
    samples: int | None = None


@dataclass(frozen=True)
class Target:
    """What an issue asks of a figure: at least or at most ``value``."""

    bound: Literal["at least", "at most"]
    value: float
    source: str = ""  # the issue that sets it, e.g. "#4"

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.bound == "at least" else figure <= self.value


def at_least(value: float, source: str = "") -> Target:
    return Target("at least", value, source)


def at_most(value: float, source: str = "") -> Target:
    return Target("at most", value, source)


@dataclass(frozen=True)
class Figure:
    """A figure of one script's run, next to the baseline measured in the same run."""

    script: str
    figure: Measurement
    baseline: Measurement
    target: Target
    detail: str = ""

    @property
    def met(self) -> bool:
        return self.target.met(self.figure.value)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "met": self.met}

    @classmethod
    def from_json(cls, row: dict[str, object]) -> Figure:
        fields = {k: v for k, v in row.items() if k != "met"}
        return cls(
            script=str(fields["script"]),
            figure=Measurement(**fields["figure"]),  # type: ignore[arg-type]
            baseline=Measurement(**fields["baseline"]),  # type: ignore[arg-type]
            target=Target(**fields["target"]),  # type: ignore[arg-type]
            detail=str(fields.get("detail", "")),
        )


def record(figure: Measurement, baseline: Measurement, target: Target, detail: str = "") -> None:
    """Record one figure for `make bench` (nothing happens when no runner asked for figures)."""
    path = os.environ.get(FIGURES_FILE)
    if not path:
        return
    script = Path(sys.argv[0]).stem
    row = Figure(script, figure, baseline, target, detail).to_json()
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
