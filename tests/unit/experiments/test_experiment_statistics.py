"""The experiments' statistics: sufficient statistics, confidence sequences, SRM, guardrails,
decision rules and allocation, on plain numbers and fakes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chisquare, norm

from finops.experiments.domain.allocation import (
    BANDIT_MIN_SHARE,
    pick,
    probability_best,
    thompson_propensities,
    unit_hash,
)
from finops.experiments.domain.decision import AnalysisSettings, Outcome, analyse, look
from finops.experiments.domain.sequential import (
    compare,
    log_estimate,
    mixture_half_width,
    variant_interval,
)
from finops.experiments.domain.srm import srm_p_value
from finops.experiments.domain.stats import VariantStats


def variant(
    rng: np.random.Generator,
    n: int,
    *,
    mean_cost: float = 0.01,
    success_rate: float = 0.9,
    quality: float = 0.8,
    latency_ms: float = 500.0,
) -> VariantStats:
    stats = VariantStats()
    costs = rng.lognormal(math.log(mean_cost) - 0.125, 0.5, n)
    wins = rng.random(n) < success_rate
    qualities = np.clip(rng.normal(quality, 0.1, n), 0, 1)
    for cost, win, q in zip(costs, wins, qualities, strict=True):
        stats.add(cost_usd=float(cost), success=bool(win), latency_ms=latency_ms, quality=float(q))
    return stats


def test_stats_round_trip_through_plain_data_and_p95_is_within_a_bucket() -> None:
    stats = VariantStats()
    for i in range(1, 101):
        stats.add(cost_usd=0.01 * i, success=i % 10 != 0, latency_ms=float(i * 10), quality=None)
    assert stats.n == 100 and stats.successes == 90 and stats.quality_n == 0
    assert stats.cost_success_sum == pytest.approx(stats.cost_sum - 0.01 * sum(range(10, 101, 10)))
    p95 = stats.p95_latency_ms()
    assert p95 is not None and 950 <= p95 <= 950 * 1.05
    again = VariantStats.from_dict(stats.to_dict())
    assert again.to_dict() == stats.to_dict()
    assert again.p95_latency_ms() == p95


def test_delta_method_variance_of_cost_per_success_matches_replications() -> None:
    rng = np.random.default_rng(1)
    logs, predicted = [], []
    for _ in range(400):
        stats = variant(rng, 300, success_rate=0.7)
        est = log_estimate(stats, "cost_per_success")
        logs.append(float(est.log_value))
        predicted.append(float(est.variance))
    assert np.var(logs) == pytest.approx(np.mean(predicted), rel=0.2)


def test_mixture_interval_is_wider_than_a_fixed_horizon_one_and_shrinks_with_data() -> None:
    z = norm.ppf(0.975)
    for variance in (1e-2, 1e-3, 1e-4):
        assert mixture_half_width(variance, 0.05, 0.1) > z * math.sqrt(variance)
    widths = [float(mixture_half_width(1.0 / n, 0.05, 0.1)) for n in (100, 1000, 10_000)]
    assert widths[0] > widths[1] > widths[2]


def test_srm_p_value_is_scipys_chi_square_and_elementwise_over_looks() -> None:
    assert float(srm_p_value([450, 550], [0.5, 0.5])) == pytest.approx(chisquare([450, 550]).pvalue)
    looks = srm_p_value([np.array([0, 45, 4500]), np.array([0, 55, 5500])], [0.5, 0.5])
    assert looks[0] == 1.0 and looks[1] > 0.3 and looks[2] < 1e-20


def test_a_cheaper_variant_wins_and_nothing_is_decided_before_min_samples() -> None:
    rng = np.random.default_rng(2)
    control = variant(rng, 3000)
    cheaper = variant(rng, 3000, mean_cost=0.007)
    settings = AnalysisSettings()
    assert look(control, cheaper, settings) == Outcome.TREATMENT_WINS
    assert look(cheaper, control, settings) == Outcome.CONTROL_WINS
    early = AnalysisSettings(min_samples=5000)
    assert look(control, cheaper, early) == Outcome.CONTINUE
    comparison = compare(control, cheaper, "cost_per_success", 0.05, 0.1)
    assert comparison.upper < 0 and comparison.estimate == pytest.approx(math.log(0.7), abs=0.05)


def test_srm_blocks_a_decision_that_would_otherwise_be_taken() -> None:
    rng = np.random.default_rng(3)
    control = variant(rng, 2000)
    cheaper = variant(rng, 3000, mean_cost=0.007)
    p = float(srm_p_value([control.n, cheaper.n], [0.5, 0.5]))
    assert look(control, cheaper, AnalysisSettings(), srm_p=p) == Outcome.CONTINUE
    result = analyse(["A", "B"], [control, cheaper], AnalysisSettings(), p)
    assert result.verdict is None and result.srm_ok is False
    unblocked = analyse(["A", "B"], [control, cheaper], AnalysisSettings(), None)
    assert unblocked.verdict is not None and unblocked.verdict.winner == "B"


def test_a_cheaper_variant_with_poor_quality_is_stopped_with_no_winner() -> None:
    rng = np.random.default_rng(4)
    control = variant(rng, 2000)
    cheap_and_bad = variant(rng, 2000, mean_cost=0.005, quality=0.6)
    result = analyse(["A", "B"], [control, cheap_and_bad], AnalysisSettings(), None)
    assert result.verdict is not None
    assert result.verdict.winner is None
    assert "min_quality_ratio" in result.verdict.reason
    assert result.variants[1].guardrails_ok is False


def test_a_cheaper_variant_that_reports_no_quality_does_not_win_while_the_control_does() -> None:
    # B's answers break the agent's quality scorer (quality None on every call): 30 % cheaper,
    # it won with "guardrails hold" though min_quality_ratio was never checked
    rng = np.random.default_rng(6)
    control = variant(rng, 2000)
    cheaper = variant(rng, 2000, mean_cost=0.007)
    unrated = VariantStats(
        **{**vars(cheaper), "quality_n": 0, "quality_sum": 0.0, "quality_sq_sum": 0.0}
    )
    settings = AnalysisSettings()
    assert look(control, unrated, settings) == Outcome.CONTINUE
    result = analyse(["A", "B"], [control, unrated], settings, None)
    assert result.verdict is None
    assert result.variants[1].guardrails_ok is False
    assert result.variants[1].guardrail_reasons == [
        "no quality reported: min_quality_ratio cannot be checked"
    ]
    # once its calls report a quality, it wins as any; with no quality on either side the
    # guardrail has nothing to compare, as before
    assert look(control, cheaper, settings) == Outcome.TREATMENT_WINS
    blind = VariantStats(
        **{**vars(control), "quality_n": 0, "quality_sum": 0.0, "quality_sq_sum": 0.0}
    )
    assert look(blind, unrated, settings) == Outcome.TREATMENT_WINS
    # the looks of a turn, on cumulative arrays, follow the same rule
    looks = look(
        VariantStats(
            **{k: np.full(3, v) if k != "latency_counts" else v for k, v in vars(control).items()}
        ),
        VariantStats(
            **{k: np.full(3, v) if k != "latency_counts" else v for k, v in vars(unrated).items()}
        ),
        settings,
    )
    assert list(looks) == [Outcome.CONTINUE] * 3


def test_success_rate_and_latency_guardrails_stop_a_variant() -> None:
    rng = np.random.default_rng(5)
    control = variant(rng, 3000)
    flaky = variant(rng, 3000, mean_cost=0.007, success_rate=0.7)
    settings = AnalysisSettings(metric="cost", max_success_rate_drop=0.05)
    result = analyse(["A", "B"], [control, flaky], settings, None)
    assert result.verdict is not None and result.verdict.winner is None
    assert "max_success_rate_drop" in result.verdict.reason
    slow = variant(rng, 3000, mean_cost=0.007, latency_ms=4000)
    latency = analyse(["A", "B"], [control, slow], AnalysisSettings(max_p95_latency_ms=2000), None)
    assert latency.verdict is not None and latency.verdict.winner is None
    assert "max_p95_latency_ms" in latency.verdict.reason


def test_results_report_intervals_that_cover_the_variant_metric() -> None:
    rng = np.random.default_rng(6)
    stats = variant(rng, 2000, mean_cost=0.01, success_rate=0.8)
    lo, hi = variant_interval(stats, "cost_per_success", 0.05, 0.1)
    assert lo < 0.01 / 0.8 < hi
    result = analyse(["A", "B"], [stats, variant(rng, 2000)], AnalysisSettings(), 0.5)
    assert result.variants[0].interval is not None
    assert result.variants[0].metric_value == pytest.approx(stats.cost_sum / stats.successes)


def test_sticky_hashing_gives_a_unit_one_variant_and_the_declared_shares() -> None:
    weights = [0.2, 0.8]
    picks = [pick(weights, unit_hash("exp-1", f"user-{i}")) for i in range(20_000)]
    assert all(pick(weights, unit_hash("exp-1", f"user-{i}")) == picks[i] for i in range(200))
    assert np.mean(picks) == pytest.approx(0.8, abs=0.015)
    other_salt = [pick(weights, unit_hash("exp-2", f"user-{i}")) for i in range(200)]
    assert other_salt != picks[:200]


def test_thompson_sampling_favours_the_cheaper_variant_and_keeps_a_floor() -> None:
    rng = np.random.default_rng(7)
    control = variant(rng, 400)
    cheaper = variant(rng, 400, mean_cost=0.006)
    assert thompson_propensities([VariantStats(), cheaper], [0.5, 0.5], "cost", rng) == [0.5, 0.5]
    shares = thompson_propensities([control, cheaper], [0.5, 0.5], "cost_per_success", rng)
    assert sum(shares) == pytest.approx(1.0)
    assert shares[1] > 0.9 and shares[0] >= BANDIT_MIN_SHARE / (1 + BANDIT_MIN_SHARE) - 1e-9
    best = probability_best([control, cheaper], "quality", rng)
    assert 0.05 < best[0] < 0.95  # equal quality: neither is clearly best
