"""bench/saving_bound.py: the most a run of the one-task set can save at a stated risk."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import saving_bound  # noqa: E402
from saving_bound import Model, cheapest_plan_costs  # noqa: E402

bound = saving_bound.saving_bound


def test_the_bounds_the_readme_quotes():
    at_95, at_99 = bound(0.95, 0.1), bound(0.99, 0.1)
    assert (round(at_95.mean_saving, 3), round(at_99.mean_saving, 3)) == (0.776, 0.295)
    assert (round(at_95.oracle_saving, 3), round(at_99.oracle_saving, 3)) == (0.936, 0.501)
    assert (round(bound(0.95, 0.2).mean_saving, 3), round(bound(0.99, 0.2).mean_saving, 3)) == (
        0.818,
        0.366,
    )
    assert at_95.uncertain == ("cheap-95",) and at_99.uncertain == ("cheap-95", "runner-up")
    assert [round(s, 4) for s in at_99.sd] == [0.0217, 0.0215]


def test_a_lower_risk_saves_less_and_no_risk_bound_beats_knowing_every_quality():
    for target in (0.95, 0.99):
        savings = [bound(target, risk, draws=1000).mean_saving for risk in (0.05, 0.1, 0.2, 0.3)]
        assert savings == sorted(savings)
        assert savings[-1] < bound(target, 0.3, draws=1000).oracle_saving


def test_with_estimates_as_sharp_as_a_million_runs_the_bound_is_the_oracle():
    sharp = bound(0.95, 0.1, draws=200, requests=2160 * 10**6)
    assert sharp.sd[0] < 3e-5
    assert sharp.mean_saving == pytest.approx(sharp.oracle_saving, abs=0.002)


def test_the_cheapest_plan_meets_the_floor_at_the_lower_bound_of_its_estimate():
    models = [Model("best", 1.0, 1.0), Model("cheap", 0.9, 0.1)]
    known = np.array([[1.0, 0.9]])
    # known qualities: half on each model gives exactly 0.95
    assert cheapest_plan_costs(models, known, np.zeros(2), 0.95, 1.0)[0] == pytest.approx(0.55)
    # the cheap model's estimate 0.9 +- 0.05 at one standard deviation: share w on it needs
    # 1 - 0.1 w - 0.05 w >= 0.95, w <= 1/3, so the plan costs 1 - 0.9 / 3 = 0.7
    cost = cheapest_plan_costs(models, known, np.array([0.0, 0.05]), 0.95, 1.0)[0]
    assert cost == pytest.approx(0.7, abs=0.003)


def test_doctests():
    result = doctest.testmod(saving_bound)
    assert result.attempted >= 3 and result.failed == 0
