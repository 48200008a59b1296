"""bench/backtest_trace.py: a replay block by block, and where its explored requests went."""

from __future__ import annotations

import doctest
import random
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import backtest_trace  # noqa: E402

from finops.optimizer.domain.backtest import Outcomes, PromptRecord  # noqa: E402

#: model -> (chance of a right answer, cost in USD)
MODELS = {"big": (0.85, 0.01), "mid": (0.8, 0.004), "small": (0.55, 0.0005)}


def _outcomes(prompts: int = 300) -> Outcomes:
    rng = random.Random(5)
    records = [
        PromptRecord(
            f"p{i}",
            "qa",
            "what is the answer",
            40.0,
            {m: (float(rng.random() < p), cost) for m, (p, cost) in MODELS.items()},
        )
        for i in range(prompts)
    ]
    return Outcomes(records, list(MODELS))


def test_each_block_sorts_its_explored_requests_by_mechanism(
    capsys: pytest.CaptureFixture[str],
) -> None:
    backtest_trace.trace(_outcomes(), target=0.95, seed=2, block=100)
    lines = capsys.readouterr().out.splitlines()
    blocks = [line for line in lines if " ratio " in line]
    explored_lines = [line.strip() for line in lines if line.strip().startswith("explored by")]
    assert len(blocks) == len(explored_lines) == 3
    total_explored = 0
    for block, explored in zip(blocks, explored_lines, strict=True):
        # the explored requests in parentheses per model, and the same requests by mechanism
        in_parentheses = sum(int(n) for n in re.findall(r":\d+\((\d+)\)", block))
        cells = explored.removeprefix("explored by")
        by_mechanism = re.findall(r"([a-z ]+): (\d+) \(([+-]\d+\.\d\d)%\)", cells)
        assert sum(int(n) for _why, n, _given_up in by_mechanism) == in_parentheses
        assert {why.strip() for why, _n, _g in by_mechanism} <= {
            "thompson",
            "identification",
            "reference audit",
            "threshold test",
            "fair trial",
            "floor",
        }
        total_explored += in_parentheses
    assert total_explored > 0


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(backtest_trace, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4
    assert result.failed == 0
