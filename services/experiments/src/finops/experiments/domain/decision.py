"""The decision rules of an experiment, taken at every look. Pure: no I/O.

At each look (after every event), for each treatment against the control (the first
variant), in this order:

1. nothing while a variant has fewer than ``min_samples`` events, or while the SRM check
   rejects the declared split (fixed allocation only);
2. a guardrail *confirmed* broken by its always-valid interval (quality ratio against the
   control below ``min_quality_ratio``, success-rate drop above ``max_success_rate_drop``,
   0.05 unless set to None) or a p95 latency over ``max_p95_latency_ms`` stops the
   experiment with no winner;
3. a treatment whose interval on the primary metric lies wholly on the better side wins,
   provided its guardrails hold at their point estimates (the quality ratio does not hold
   while the control's calls report a quality and the treatment's none);
4. when every treatment's interval lies wholly on the worse side, the control wins.

Under ``metric`` ``quality`` the primary interval decides once each variant has
``MIN_RATED_ANSWERS`` scored answers; a variant whose per-call quality is 0 (every call failed
without a quality, or every scored answer is 0) loses to one delivering more once both have
them (none for one that failed every call). The ``min_quality_ratio`` guardrail is confirmed
broken only from ``MIN_RATED_ANSWERS`` scored answers per variant.

With more than two variants each comparison runs at alpha / (number of treatments)
(Bonferroni), so the chance of any false winner stays at most alpha.

:func:`look` does one comparison on plain numbers or on numpy arrays (one element per look,
as the simulations use); :func:`analyse` applies it to a running experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from finops.experiments.domain.sequential import (
    LOWER_IS_BETTER,
    MIN_RATED_ANSWERS,
    Metric,
    answers_judge,
    compare,
    compare_answered_quality,
    metric_value,
    quality_is_nil,
    quality_per_call,
    success_rate_drop,
    variant_interval,
)
from finops.experiments.domain.srm import SRM_P_THRESHOLD
from finops.experiments.domain.stats import VariantStats

DEFAULT_TAU = 0.1
DEFAULT_GUARDRAIL_TAU = 0.05
#: the success-rate guardrail is on unless a definition turns it off (None): under the default
#: metric, cost per success, a call that gave up costs 0 and the variant's cost is spread over
#: its successes, so a variant failing most of its calls won on cost and was pinned
DEFAULT_MAX_SUCCESS_RATE_DROP = 0.05


@dataclass(frozen=True)
class AnalysisSettings:
    metric: Metric = "cost_per_success"
    alpha: float = 0.05
    min_samples: int = 100
    min_quality_ratio: float = 0.95
    max_p95_latency_ms: float | None = None
    max_success_rate_drop: float | None = DEFAULT_MAX_SUCCESS_RATE_DROP
    tau: float = DEFAULT_TAU
    guardrail_tau: float = DEFAULT_GUARDRAIL_TAU
    srm_threshold: float = SRM_P_THRESHOLD


class Outcome(IntEnum):
    CONTINUE = 0
    TREATMENT_WINS = 1
    CONTROL_WINS = 2
    GUARDRAIL_BROKEN = 3


@dataclass(frozen=True)
class GuardrailCheck:
    broken: Any  # confirmed by the always-valid interval (or p95 over the ceiling)
    holds: Any  # holds at the point estimates
    reasons: Any  # text per check, only for scalar looks
    #: text per guardrail that does not hold and is not broken yet (scalar looks only): it
    #: keeps the treatment from winning, and is no reason for a stop
    held_back: list[str] = field(default_factory=list)


def guardrails(
    control: VariantStats,
    treatment: VariantStats,
    settings: AnalysisSettings,
    alpha: float,
    treatment_p95_ms: float | None = None,
) -> GuardrailCheck:
    broken: Any = np.zeros_like(np.asarray(treatment.n), dtype=bool)
    holds: Any = np.ones_like(np.asarray(treatment.n), dtype=bool)
    reasons: list[str] = []
    control_rated = np.asarray(control.quality_n) > 0
    treatment_rated = np.asarray(treatment.quality_n) > 0
    has_quality = control_rated & treatment_rated
    # the control's calls report a quality and the treatment's none (its answers break the
    # agent's scorer, say): the ratio cannot be checked, so it does not hold, nor is it broken
    unrated = control_rated & ~treatment_rated
    quality = compare_answered_quality(control, treatment, alpha, settings.guardrail_tau)
    floor = math.log(settings.min_quality_ratio)
    # confirmed broken only from MIN_RATED_ANSWERS scored answers per variant: from a few
    # identical scores (variance 0, floored) the interval was ~1e-8 wide
    judged = (np.asarray(control.quality_n) >= MIN_RATED_ANSWERS) & (
        np.asarray(treatment.quality_n) >= MIN_RATED_ANSWERS
    )
    with np.errstate(invalid="ignore"):
        quality_broken = has_quality & judged & (quality.upper < floor)
        quality_holds = ~unrated & (~has_quality | (quality.estimate >= floor))
    broken = broken | quality_broken
    holds = holds & quality_holds
    if np.ndim(quality_broken) == 0 and bool(quality_broken):
        reasons.append(
            f"quality ratio {math.exp(float(quality.estimate)):.3f} (interval upper "
            f"{math.exp(float(quality.upper)):.3f}) below min_quality_ratio "
            f"{settings.min_quality_ratio}"
        )
    held: list[str] = []
    held_back = ~quality_holds & ~quality_broken
    if np.ndim(held_back) == 0 and bool(held_back) and not bool(unrated):
        held.append(
            f"quality ratio {math.exp(float(quality.estimate)):.3f} below min_quality_ratio "
            f"{settings.min_quality_ratio}, not yet confirmed: held back"
        )
    if np.ndim(unrated) == 0 and bool(unrated):
        reasons.append("no quality reported: min_quality_ratio cannot be checked")
    if settings.max_success_rate_drop is not None:
        drop = success_rate_drop(control, treatment, alpha, settings.guardrail_tau)
        with np.errstate(invalid="ignore"):
            drop_broken = drop.lower > settings.max_success_rate_drop
            drop_holds = ~(drop.estimate > settings.max_success_rate_drop)
        broken = broken | drop_broken
        holds = holds & drop_holds
        if np.ndim(drop_broken) == 0 and bool(drop_broken):
            reasons.append(
                f"success rate drop {float(drop.estimate):.3f} (interval lower "
                f"{float(drop.lower):.3f}) above max_success_rate_drop "
                f"{settings.max_success_rate_drop}"
            )
        elif np.ndim(drop_holds) == 0 and not bool(drop_holds):
            held.append(
                f"success rate drop {float(drop.estimate):.3f} above max_success_rate_drop "
                f"{settings.max_success_rate_drop}, not yet confirmed (interval lower "
                f"{float(drop.lower):.3f}): held back"
            )
    if settings.metric == "cost":
        holds = holds & _no_fewer_successes(control, treatment, reasons)
    if settings.max_p95_latency_ms is not None and treatment_p95_ms is not None:
        if treatment_p95_ms > settings.max_p95_latency_ms:
            broken = broken | True
            holds = holds & False
            reasons.append(
                f"p95 latency {treatment_p95_ms:.0f} ms above max_p95_latency_ms "
                f"{settings.max_p95_latency_ms:g}"
            )
    return GuardrailCheck(broken, holds, reasons, held)


def _no_fewer_successes(control: VariantStats, treatment: VariantStats, reasons: list[str]) -> Any:
    """Whether the treatment's success rate is at least the control's (point estimates): under
    ``metric`` ``cost``, the mean cost per call, a call that gave up counts at cost 0, so a
    variant that fails more looks cheaper; it does not win on cost then (whether such a drop
    breaks the experiment is ``max_success_rate_drop``'s to say)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_a = np.divide(control.successes, control.n)
        rate_b = np.divide(treatment.successes, treatment.n)
        fewer = rate_b < rate_a
    if np.ndim(fewer) == 0 and bool(fewer):
        reasons.append(
            f"success rate {float(rate_b):.3f} below the control's {float(rate_a):.3f}: under "
            "metric cost, calls that gave up (cost 0) would count as savings"
        )
    return ~fewer


def look(
    control: VariantStats,
    treatment: VariantStats,
    settings: AnalysisSettings,
    *,
    srm_p: Any = 1.0,
    alpha: float | None = None,
    treatment_p95_ms: float | None = None,
) -> Any:
    """The :class:`Outcome` of one treatment against the control at each look."""
    alpha = settings.alpha if alpha is None else alpha
    enough = (np.asarray(control.n) >= settings.min_samples) & (
        np.asarray(treatment.n) >= settings.min_samples
    )
    active = enough & (np.asarray(srm_p) >= settings.srm_threshold)
    primary = compare(control, treatment, settings.metric, alpha, settings.tau)
    with np.errstate(invalid="ignore"):
        if LOWER_IS_BETTER[settings.metric]:
            better, worse = primary.upper < 0, primary.lower > 0
        else:
            better, worse = primary.lower > 0, primary.upper < 0
    if settings.metric == "quality":
        rated = (np.asarray(control.quality_n) >= MIN_RATED_ANSWERS) & (
            np.asarray(treatment.quality_n) >= MIN_RATED_ANSWERS
        )
        # a variant whose per-call quality is 0 (every call failed without a quality, or every
        # scored answer is 0) has no log to compare: it loses to one that delivers more, once
        # each has MIN_RATED_ANSWERS scored answers (none for one that failed every call)
        control_nil, treatment_nil = quality_is_nil(control), quality_is_nil(treatment)
        both_judge = answers_judge(control) & answers_judge(treatment)
        with np.errstate(invalid="ignore"):
            control_above = ~control_nil & (quality_per_call(control) > 0)
            treatment_above = ~treatment_nil & (quality_per_call(treatment) > 0)
        better = (rated & ~control_nil & better) | (both_judge & control_nil & treatment_above)
        worse = (rated & ~treatment_nil & worse) | (both_judge & treatment_nil & control_above)
    guard = guardrails(control, treatment, settings, alpha, treatment_p95_ms)
    return np.select(
        [~active, guard.broken, better & guard.holds, worse],
        [Outcome.CONTINUE, Outcome.GUARDRAIL_BROKEN, Outcome.TREATMENT_WINS, Outcome.CONTROL_WINS],
        default=Outcome.CONTINUE,
    )


def decisive_looks(stats: Sequence[VariantStats], settings: AnalysisSettings, srm_p: Any) -> Any:
    """Which looks (elements of the cumulative arrays in ``stats``) reach a verdict, by the
    same rules as :func:`analyse` except the p95 latency guardrail (scalar looks only)."""
    alpha = settings.alpha / max(1, len(stats) - 1)
    outcomes = np.vstack(
        [np.atleast_1d(look(stats[0], s, settings, srm_p=srm_p, alpha=alpha)) for s in stats[1:]]
    )
    return (
        (outcomes == Outcome.GUARDRAIL_BROKEN).any(axis=0)
        | (outcomes == Outcome.TREATMENT_WINS).any(axis=0)
        | (outcomes == Outcome.CONTROL_WINS).all(axis=0)
    )


@dataclass(frozen=True)
class Verdict:
    """A decision: ``winner`` is None when the experiment stops without one."""

    winner: str | None
    reason: str


@dataclass(frozen=True)
class VariantReport:
    name: str
    metric_value: float | None
    interval: tuple[float, float] | None
    guardrails_ok: bool
    #: every guardrail broken or holding the treatment back (the results' guardrail_reasons)
    guardrail_reasons: list[str]
    #: the broken ones alone: a stop's reason
    broken_reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Analysis:
    verdict: Verdict | None
    srm_p_value: float | None
    srm_ok: bool
    variants: list[VariantReport]


def _finite(x: Any) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


def analyse(
    names: Sequence[str],
    stats: Sequence[VariantStats],
    settings: AnalysisSettings,
    srm_p: float | None,
) -> Analysis:
    """Look at a running experiment once; ``srm_p`` is None for bandit allocation."""
    control = stats[0]
    alpha = settings.alpha / max(1, len(stats) - 1)
    srm_ok = srm_p is None or srm_p >= settings.srm_threshold
    reports = [_report(names[0], control, control, settings, alpha, is_control=True)]
    outcomes: list[tuple[str, Outcome, VariantReport]] = []
    for name, s in zip(names[1:], stats[1:], strict=True):
        report = _report(name, control, s, settings, alpha, is_control=False)
        reports.append(report)
        outcome = Outcome(
            int(
                look(
                    control,
                    s,
                    settings,
                    srm_p=1.0 if srm_p is None else srm_p,
                    alpha=alpha,
                    treatment_p95_ms=s.p95_latency_ms(),
                )
            )
        )
        outcomes.append((name, outcome, report))
    verdict = _verdict(names[0], outcomes, settings)
    return Analysis(verdict, srm_p, bool(srm_ok), reports)


def _report(
    name: str,
    control: VariantStats,
    s: VariantStats,
    settings: AnalysisSettings,
    alpha: float,
    *,
    is_control: bool,
) -> VariantReport:
    lo, hi = variant_interval(s, settings.metric, alpha, settings.tau)
    interval = (_finite(lo), _finite(hi))
    if is_control:
        return VariantReport(
            name, _finite(metric_value(s, settings.metric)), _pair(interval), True, []
        )
    guard = guardrails(control, s, settings, alpha, s.p95_latency_ms())
    return VariantReport(
        name,
        _finite(metric_value(s, settings.metric)),
        _pair(interval),
        bool(guard.holds) and not bool(guard.broken),
        [*guard.reasons, *guard.held_back],
        list(guard.reasons),
    )


def _pair(interval: tuple[float | None, float | None]) -> tuple[float, float] | None:
    lo, hi = interval
    return (lo, hi) if lo is not None and hi is not None else None


def _verdict(
    control_name: str,
    outcomes: list[tuple[str, Outcome, VariantReport]],
    settings: AnalysisSettings,
) -> Verdict | None:
    for name, outcome, report in outcomes:
        if outcome == Outcome.GUARDRAIL_BROKEN:
            return Verdict(
                None, f"variant {name} broke a guardrail: " + "; ".join(report.broken_reasons)
            )
    winners = [
        (name, report) for name, outcome, report in outcomes if outcome == Outcome.TREATMENT_WINS
    ]
    if winners:
        lower_better = LOWER_IS_BETTER[settings.metric]
        name, report = sorted(
            winners, key=lambda w: (w[1].metric_value or 0.0) * (1 if lower_better else -1)
        )[0]
        return Verdict(
            name,
            f"{name} beats {control_name} on {settings.metric} at alpha {settings.alpha} "
            "(always-valid interval excludes no difference); guardrails hold",
        )
    if outcomes and all(outcome == Outcome.CONTROL_WINS for _, outcome, _ in outcomes):
        return Verdict(
            control_name,
            f"every variant is worse than {control_name} on {settings.metric} at alpha "
            f"{settings.alpha}",
        )
    return None
