"""Always-valid inference: normal-mixture confidence sequences. Pure: no I/O.

A fixed-horizon test looked at after every event declares false winners far more often than
alpha. The normal-mixture sequential probability ratio test (mSPRT; Robbins 1970, Johari et
al. 2017, the asymptotic confidence sequences of Howard et al. 2021 / Waudby-Smith et al.
2023) mixes the likelihood ratio over a N(0, tau^2) prior on the effect. Its statistic is a
nonnegative martingale under the null, so by Ville's inequality the chance that it *ever*
crosses 1/alpha is at most alpha, however often one looks. Inverting it gives an interval
valid at every look simultaneously:

    estimate ± sqrt( V (V + tau²) / tau² · (2 log(1/alpha) + log((V + tau²) / V)) )

where V is the variance of the estimate at that look. Effects are compared on the log scale
(log of the treatment's metric minus log of the control's), so tau is unitless: the size of
the relative effects the test is tuned to find fastest (0.1 ≈ 10 %).

Every function accepts plain floats or numpy arrays of cumulative sums (one element per look).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from finops.experiments.domain.stats import VariantStats

Metric = Literal["cost_per_success", "cost", "quality"]
LOWER_IS_BETTER: dict[str, bool] = {"cost_per_success": True, "cost": True, "quality": False}
_TINY = 1e-18
#: the scored answers each variant needs before they judge it (the primary metric ``quality``,
#: the ``min_quality_ratio`` guardrail, a bandit's allocation under ``quality``): an agent that
#: scores one answer in twenty has 5 per variant at 100 calls, the answers' variance estimated
#: from so few (0 from identical scores, floored at 1e-18) told identical variants apart in
#: 9 % of A/A runs
MIN_RATED_ANSWERS = 30


@dataclass(frozen=True)
class LogEstimate:
    """log of a variant's metric and the variance of that log (delta method)."""

    log_value: Any
    variance: Any


def _safe_div(a: Any, b: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(a, b)


def delivered_share(stats: VariantStats) -> Any:
    """The share of calls that are not failures without a quality (a call that gave up
    delivered nothing)."""
    return 1.0 - _safe_div(stats.unrated_failures, stats.n)


def quality_per_call(stats: VariantStats) -> Any:
    """The metric ``quality``: the mean quality of the calls that reported one times the
    share of calls that did not fail without one (intention-to-treat: a call that gave up
    counts at 0, as its cost 0 enters the cost metrics). Each call that did not fail counts
    at its answers' mean whether or not the agent scored it, so an agent that scores some of
    its answers does not weigh its failures more than its answers. 0 when every call failed
    without a quality."""
    share = delivered_share(stats)
    with np.errstate(invalid="ignore"):
        return np.where(np.asarray(share) == 0.0, 0.0, answered_quality(stats) * share)


def _all_failed(stats: VariantStats) -> Any:
    n = np.asarray(stats.n)
    return (n > 0) & (np.asarray(stats.unrated_failures) >= n)


def quality_is_nil(stats: VariantStats) -> Any:
    """Whether a variant's per-call quality is 0 with data: every call failed without a
    quality, or every scored answer is 0 (a 0/1 judge its output always fails). No log, no
    variance to compare: the rules judge it apart."""
    scored = np.asarray(stats.quality_n) > 0
    return _all_failed(stats) | (
        (np.asarray(stats.n) > 0) & scored & (np.asarray(stats.quality_sq_sum) == 0.0)
    )


def answers_judge(stats: VariantStats) -> Any:
    """Whether a variant's scored answers are enough to judge it by: ``MIN_RATED_ANSWERS`` of
    them, or none ever because every call failed without a quality (0 for certain)."""
    return (np.asarray(stats.quality_n) >= MIN_RATED_ANSWERS) | _all_failed(stats)


def metric_value(stats: VariantStats, metric: Metric) -> Any:
    """Point estimate of a metric: cost per success is total cost over successes; quality is
    :func:`quality_per_call`."""
    if metric == "cost_per_success":
        return _safe_div(stats.cost_sum, stats.successes)
    if metric == "cost":
        return _safe_div(stats.cost_sum, stats.n)
    return quality_per_call(stats)


def answered_quality(stats: VariantStats) -> Any:
    """The mean quality of the calls that reported one (the ``min_quality_ratio``
    guardrail's figure, and the results' ``mean_quality``)."""
    return _safe_div(stats.quality_sum, stats.quality_n)


def _answered_quality_log_estimate(stats: VariantStats) -> LogEstimate:
    """log of the mean quality of the calls that reported one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.asarray(stats.quality_n, dtype=float)
        mean = np.divide(stats.quality_sum, n)
        var = np.maximum(np.divide(stats.quality_sq_sum, n) - mean * mean, 0.0)
        # answers all 0: log -inf, and no spread to speak of (0 / 0 was a NaN variance, which
        # no interval, guardrail or bandit draw could read)
        variance = np.where(mean == 0.0, 0.0, np.divide(var, n * mean * mean))
        return LogEstimate(np.log(mean), np.maximum(variance, _TINY))


def _quality_log_estimate(stats: VariantStats) -> LogEstimate:
    """log of :func:`quality_per_call`: log of the answers' mean plus log of the delivered
    share, the variance of each by the delta method, added (the share of a binomial count:
    Var(log r) ~ (1 - r) / (n r)). -inf where every call failed without a quality."""
    answered = _answered_quality_log_estimate(stats)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.asarray(stats.n, dtype=float)
        share = delivered_share(stats)
        share_variance = np.divide(1.0 - share, n * share)
        return LogEstimate(
            answered.log_value + np.log(share),
            np.maximum(answered.variance + share_variance, _TINY),
        )


def log_estimate(stats: VariantStats, metric: Metric) -> LogEstimate:
    """log(metric) with its variance; nan where the variant has no usable data yet."""
    if metric == "quality":
        return _quality_log_estimate(stats)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.asarray(stats.n, dtype=float)
        cost_mean = np.divide(stats.cost_sum, n)
        cost_var = np.maximum(np.divide(stats.cost_sq_sum, n) - cost_mean * cost_mean, 0.0)
        if metric == "cost":
            variance = np.divide(cost_var, n * cost_mean * cost_mean)
            return LogEstimate(np.log(cost_mean), np.maximum(variance, _TINY))
        success_rate = np.divide(stats.successes, n)
        ratio = np.divide(cost_mean, success_rate)
        covariance = np.divide(stats.cost_success_sum, n) - cost_mean * success_rate
        success_var = success_rate * (1.0 - success_rate)
        # Delta method for a ratio of means R = mean(c) / mean(s):
        # Var(R) ~ (var(c) - 2 R cov(c, s) + R^2 var(s)) / (n mean(s)^2).
        numerator = np.maximum(
            cost_var - 2.0 * ratio * covariance + ratio * ratio * success_var, 0.0
        )
        variance = np.divide(numerator, n * success_rate * success_rate * ratio * ratio)
        return LogEstimate(np.log(ratio), np.maximum(variance, _TINY))


def mixture_half_width(variance: Any, alpha: float, tau: float) -> Any:
    """Half-width of the normal-mixture confidence sequence for an estimate of variance V."""
    v = np.maximum(np.asarray(variance, dtype=float), _TINY)
    tau2 = tau * tau
    return np.sqrt(v * (v + tau2) / tau2 * (2.0 * np.log(1.0 / alpha) + np.log((v + tau2) / v)))


@dataclass(frozen=True)
class Comparison:
    """log(treatment) - log(control) of a metric with its always-valid interval."""

    estimate: Any
    lower: Any
    upper: Any


def compare(
    control: VariantStats, treatment: VariantStats, metric: Metric, alpha: float, tau: float
) -> Comparison:
    return _compare(log_estimate(control, metric), log_estimate(treatment, metric), alpha, tau)


def compare_answered_quality(
    control: VariantStats, treatment: VariantStats, alpha: float, tau: float
) -> Comparison:
    """The quality ratio of the calls that reported a quality (the ``min_quality_ratio``
    guardrail: the answers' quality; calls that failed are the success rate's to judge)."""
    return _compare(
        _answered_quality_log_estimate(control),
        _answered_quality_log_estimate(treatment),
        alpha,
        tau,
    )


def _compare(a: LogEstimate, b: LogEstimate, alpha: float, tau: float) -> Comparison:
    with np.errstate(invalid="ignore"):
        estimate = b.log_value - a.log_value
    half = mixture_half_width(a.variance + b.variance, alpha, tau)
    return Comparison(estimate, estimate - half, estimate + half)


def variant_interval(stats: VariantStats, metric: Metric, alpha: float, tau: float) -> Any:
    """Always-valid interval of one variant's metric, in the metric's own units."""
    est = log_estimate(stats, metric)
    half = mixture_half_width(est.variance, alpha, tau)
    return np.exp(est.log_value - half), np.exp(est.log_value + half)


def success_rate_drop(
    control: VariantStats, treatment: VariantStats, alpha: float, tau: float
) -> Comparison:
    """Control's success rate minus the treatment's (absolute), with its interval."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_a = np.divide(control.successes, control.n)
        rate_b = np.divide(treatment.successes, treatment.n)
        variance = np.divide(rate_a * (1 - rate_a), control.n) + np.divide(
            rate_b * (1 - rate_b), treatment.n
        )
    drop = rate_a - rate_b
    half = mixture_half_width(variance, alpha, tau)
    return Comparison(drop, drop - half, drop + half)
