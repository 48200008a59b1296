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
from finops.optimizer.domain.policy import Mechanism  # noqa: E402

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


def test_each_block_sorts_its_requests_by_what_made_them_and_adds_up_to_its_shortfall(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = _outcomes()
    backtest_trace.trace(data, target=0.95, seed=2, block=100)
    lines = capsys.readouterr().out.splitlines()
    blocks = [line for line in lines if " ratio " in line]
    given_up_lines = [line.strip() for line in lines if line.strip().startswith("given up by")]
    assert len(blocks) == len(given_up_lines) == 3
    total_explored = 0
    given_up_pct = 0.0
    for block, given_up in zip(blocks, given_up_lines, strict=True):
        # the requests per model (explored ones in parentheses), and the same by what made them
        per_model = re.findall(r":(\d+)\((\d+)\)", block)
        cells = re.findall(
            r"([a-z_ ]+): (\d+) \(([+-]\d+\.\d\d)%\)", given_up.removeprefix("given up by")
        )
        made_by = {why.strip(): int(n) for why, n, _pct in cells}
        assert sum(made_by.values()) == sum(int(n) for n, _x in per_model) == 100
        assert sum(n for why, n in made_by.items() if why != "greedy") == sum(
            int(x) for _n, x in per_model
        )
        assert set(made_by) <= {"greedy", *(str(m) for m in Mechanism)}
        total_explored += sum(int(x) for _n, x in per_model)
        given_up_pct += sum(float(pct) for _why, _n, pct in cells)
    assert total_explored > 0
    # every request's quality against the best model's on the same prompt, summed over the run
    final_ratio = float(re.search(r"ratio (\d\.\d+)", blocks[-1]).group(1))  # type: ignore[union-attr]
    assert abs(given_up_pct / 100 - (1 - final_ratio)) < 0.005


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(backtest_trace, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4
    assert result.failed == 0
