"""bench/_thompson_baseline.py: issue 15's reference learner and its penalty sweep."""

from __future__ import annotations

import doctest
import random
import sys
from pathlib import Path

import pytest

from finops.optimizer.domain.backtest import Outcomes, PromptRecord

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import _thompson_baseline as baseline  # noqa: E402


def _two_tasks(prompts: int = 400) -> Outcomes:
    """Task "easy": the cheap model is as good as the dear one. Task "hard": it never answers."""
    rng = random.Random(7)
    records = []
    for i in range(prompts):
        task = "easy" if i % 2 else "hard"
        dear = float(rng.random() < 0.9)
        cheap = dear if task == "easy" else 0.0
        records.append(
            PromptRecord(f"p{i}", task, "", None, {"dear": (dear, 0.01), "cheap": (cheap, 0.0005)})
        )
    return Outcomes(records, ["cheap", "dear"])


def test_a_penalty_below_the_quality_gap_moves_only_the_task_where_cheap_is_as_good() -> None:
    data = _two_tasks()
    for seed in range(3):
        priced = baseline.replay(data, 0.3, seed=seed)
        # "easy" (half the traffic) goes to "cheap", 20 times cheaper: a saving near one half
        assert 0.45 < priced.saving < 0.5
        # "hard" stays on "dear": the ratio loses only the exploration of "cheap" there
        assert priced.quality_ratio > 0.97
        # a penalty above the 0.9 quality gap of "hard" moves it as well
        assert baseline.replay(data, 1.0, seed=seed).quality_ratio < 0.7


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    data = _two_tasks()
    assert baseline.replay(data, 0.05, seed=11) == baseline.replay(data, 0.05, seed=11)
    assert baseline.replay(data, 0.05, seed=11) != baseline.replay(data, 0.05, seed=12)


def test_ratio_and_saving_are_against_the_best_single_model_even_a_cheap_one() -> None:
    # "cheap" always answers, "dear" never: the best single model is the cheap one
    records = [
        PromptRecord(f"p{i}", "t", "", None, {"dear": (0.0, 0.01), "cheap": (1.0, 0.001)})
        for i in range(300)
    ]
    run = baseline.replay(Outcomes(records, ["cheap", "dear"]), 0.0, seed=0)
    # the ratio is the share of picks on "cheap"; each pick of "dear" costs ten of "cheap"
    assert 0.9 < run.quality_ratio < 1.0
    assert run.saving == pytest.approx(-9 * (1 - run.quality_ratio))


def test_a_model_missing_from_a_prompt_is_never_chosen_for_it() -> None:
    # "cheap" answers only the even prompts, and never right; a penalty of 5 makes it the pick
    # wherever it is offered: the odd half must still go to "dear"
    records = []
    for i in range(200):
        outcomes = {"dear": (1.0, 0.01)}
        if i % 2 == 0:
            outcomes["cheap"] = (0.0, 0.001)
        records.append(PromptRecord(f"p{i}", "t", "", None, outcomes))
    run = baseline.replay(Outcomes(records, ["cheap", "dear"]), 5.0, seed=4)
    assert run.quality_ratio == pytest.approx(0.5)
    assert run.saving == pytest.approx(1 - (0.001 + 0.01) / 2 / 0.01)


def test_a_free_best_model_gives_the_policys_zero_saving_not_an_error() -> None:
    records = [
        PromptRecord(f"p{i}", "t", "", None, {"local": (1.0, 0.0), "api": (0.5, 0.002)})
        for i in range(50)
    ]
    run = baseline.replay(Outcomes(records, ["api", "local"]), 0.1, seed=0)
    assert run.saving == 0.0
    assert 0.5 < run.quality_ratio <= 1.0


def test_frontier_takes_the_most_saving_penalty_that_misses_at_most_one_seed_in_ten() -> None:
    runs = [baseline.BaselineRun(0.0, s, 0.995, 0.05) for s in range(10)]
    runs += [baseline.BaselineRun(0.05, s, 0.95 - 0.01 * (s < 2), 0.5) for s in range(10)]
    runs += [baseline.BaselineRun(0.02, s, 0.95 - 0.01 * (s < 1), 0.4) for s in range(10)]
    (point,) = baseline.frontier(runs, [0.95], 0.005)
    # 0.05 misses two seeds (0.94 < 0.945): 0.02, one miss, is the most saving that holds
    assert (point.penalty, point.misses, point.holds) == (0.02, 1, True)
    assert point.saving_mean == pytest.approx(0.4)
    assert point.ratio_worst == pytest.approx(0.94)


def test_frontier_breaks_a_saving_tie_with_the_lower_penalty_and_allows_no_miss_under_ten() -> None:
    runs = [baseline.BaselineRun(p, s, 0.96, 0.5) for p in (0.1, 0.05) for s in range(10)]
    assert baseline.frontier(runs, [0.95], 0.005)[0].penalty == 0.05
    three = [baseline.BaselineRun(0.0, s, 0.99, 0.1) for s in range(3)]
    three += [baseline.BaselineRun(0.1, s, 0.96 - 0.03 * (s == 0), 0.6) for s in range(3)]
    # one miss in three seeds is more than a tenth: the penalty that never misses is taken
    assert baseline.frontier(three, [0.95], 0.005)[0].penalty == 0.0


def test_frontier_says_when_no_penalty_holds_the_target() -> None:
    runs = [baseline.BaselineRun(0.0, s, 0.97, 0.1) for s in range(10)]
    runs += [baseline.BaselineRun(0.1, s, 0.9, 0.8) for s in range(10)]
    (point,) = baseline.frontier(runs, [0.99], 0.005)
    assert not point.holds
    # every penalty misses all ten: the one of highest quality ratio is reported
    assert (point.penalty, point.misses, point.ratio_mean) == (0.0, 10, pytest.approx(0.97))


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(baseline)
    assert result.attempted >= 4
    assert result.failed == 0
