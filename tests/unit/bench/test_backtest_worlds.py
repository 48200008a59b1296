"""bench/backtest.py's nearby worlds (``--shift``) and policy knobs (``--policy``)."""

from __future__ import annotations

import argparse
import csv
import doctest
import sys
from collections import defaultdict
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import backtest  # noqa: E402


def _rows(path: Path) -> dict[str, list[tuple[str, str]]]:
    """model -> [(quality, cost)] in prompt order."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with path.open() as fh:
        for row in csv.DictReader(fh):
            out[row["model"]].append((row["quality"], row["cost_usd"]))
    return out


def test_shift_moves_only_the_named_model_to_the_asked_quality(tmp_path: Path) -> None:
    as_is, moved = tmp_path / "as_is.csv", tmp_path / "moved.csv"
    backtest.write_one_task(as_is, seed=3)
    backtest.write_one_task(moved, seed=3, shift={"cheap-95": 0.93})
    before, after = _rows(as_is), _rows(moved)

    def quality(rows: list[tuple[str, str]]) -> float:
        return sum(float(q) for q, _c in rows) / len(rows)

    best = quality(after["best"])
    assert quality(before["cheap-95"]) / best == pytest.approx(0.95, abs=1 / 2160)
    assert quality(after["cheap-95"]) / best == pytest.approx(0.93, abs=1 / 2160)
    assert [c for _q, c in after["cheap-95"]] == [c for _q, c in before["cheap-95"]]
    unmoved = [m for m in before if m != "cheap-95"]
    assert len(unmoved) == 11
    assert all(after[m] == before[m] for m in unmoved)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cheap-95", "expected MODEL=QUALITY"),
        ("gpt-5=0.9", "unknown model 'gpt-5'"),
        ("cheap-95=high", "is not a number"),
        ("cheap-95=0", "must be in (0, 1.25]"),
        ("cheap-95=1.3", "must be in (0, 1.25]"),
    ],
)
def test_a_bad_shift_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("(", r"\(")):
        backtest.parse_shift(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("target_z", "expected KEY=VALUE"),
        ("seed=3", "'seed' is not a PolicyConfig knob"),
        ("fleet_quality_target=0.9", "is not a PolicyConfig knob"),
        ("ctx_scope=task", "is not JSON"),
        ("target_z=true", "is not a value like 1.0"),
        ("identify_beyond_slack=1", "is not a value like True"),
        ("target_z=null", "is not a value like 1.0"),
    ],
)
def test_a_bad_policy_knob_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        backtest.parse_policy(text)


def test_policy_knobs_parse_to_their_values() -> None:
    assert backtest.parse_policy("target_z=0.5") == ("target_z", 0.5)
    assert backtest.parse_policy("threshold_test_risk=null") == ("threshold_test_risk", None)
    assert backtest.parse_policy('ctx_scope="task"') == ("ctx_scope", "task")


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(backtest, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5
    assert result.failed == 0
