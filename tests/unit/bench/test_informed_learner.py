"""bench/informed_learner.py: the two-arm learner told which arms matter."""

from __future__ import annotations

import doctest
import random
import sys
from pathlib import Path

from finops.optimizer.domain.backtest import Outcomes, PromptRecord

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

import informed_learner as learner  # noqa: E402


def _two_arms(cheap_quality: float, prompts: int = 2000) -> Outcomes:
    """ "dear" answers 80 % of the prompts at 0.01 USD, "cheap" ``cheap_quality`` at 0.001."""
    rng = random.Random(3)
    records = [
        PromptRecord(
            f"p{i}",
            "t",
            "",
            None,
            {
                "dear": (float(rng.random() < 0.8), 0.01),
                "cheap": (float(rng.random() < cheap_quality), 0.001),
            },
        )
        for i in range(prompts)
    ]
    return Outcomes(records, ["cheap", "dear"])


QUESTION = learner.Question(0.95, "cheap", "dear", 0.8, ("cheap", 0.9))


def test_a_cheap_arm_as_good_as_the_dear_one_takes_most_requests_without_a_margin():
    run = learner.replay(_two_arms(0.8), QUESTION, z=0.0, seed=0)
    # 90 % cheaper on the requests it takes; "dear" keeps the warm-up's 20 and a few more
    assert run.saving > 0.8
    assert run.quality_ratio > 0.97


def test_a_cheap_arm_far_below_the_bar_is_mixed_in_only_as_far_as_the_target_allows():
    run = learner.replay(_two_arms(0.4), QUESTION, z=1.0, seed=0)
    # ratio 0.5: a share of at most (1 - 0.95) / (1 - 0.5) = 10 % of the requests (9 % saved),
    # less the margin, plus the warm-up's 20 requests, which cost about 0.005 of the ratio
    assert 0.05 < run.saving < 0.12
    assert run.quality_ratio > 0.935


def test_a_larger_margin_saves_less():
    data = _two_arms(0.76)  # at the bar
    savings = [learner.replay(data, QUESTION, z=z, seed=1).saving for z in (0.0, 1.0, 2.0)]
    assert savings[0] > savings[1] > savings[2]


def test_informed_learner_doctests():
    result = doctest.testmod(learner)
    assert result.attempted > 0 and result.failed == 0
