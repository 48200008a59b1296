"""Simulated experiments that check the statistics: ``finops experiments validate``. Pure.

Each simulated run streams ``events_per_run`` calls, each assigned at random, and applies
:func:`finops.experiments.domain.decision.look` (the same code the streaming analysis uses)
after *every* event, as an operator refreshing the results page would. Runs are vectorised:
the statistics after each event are cumulative sums, so one run is a few numpy passes.

* A/A: both variants identical; any winner is a false positive (must stay ≤ alpha).
* A/B: the treatment's cost per success is ``effect`` lower at equal quality; power is the
  share of runs that pick it before the horizon.
* SRM: an A/A whose real split is 45/55 while 50/50 is declared; detection is the share of
  runs in which the chi-square check flags it (and so blocks any decision).

Under ``metric`` ``quality`` (the command runs the default metric) a failed call reports no
quality, as a call that gave up, so the per-call rule is what the runs check.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from finops.experiments.domain.decision import AnalysisSettings, Outcome, look
from finops.experiments.domain.srm import srm_p_value
from finops.experiments.domain.stats import VariantStats, cumulative_stats


@dataclass(frozen=True)
class SimulationSettings:
    events_per_run: int = 10_000
    control_mean_cost_usd: float = 0.01
    cost_log_sd: float = 0.5
    success_rate: float = 0.9
    mean_quality: float = 0.8
    quality_sd: float = 0.1
    effect: float = 0.10  # relative reduction of the treatment's cost per success in A/B
    srm_actual_share: float = 0.55  # treatment's real share in the SRM runs (50/50 declared)


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    samples: int | None  # events seen when the decision was taken
    srm_flagged: bool


def simulate_run(
    rng: np.random.Generator,
    sim: SimulationSettings,
    analysis: AnalysisSettings,
    *,
    effect: float,
    treatment_share: float,
) -> RunResult:
    control, treatment = simulated_stats(
        rng, sim, analysis, effect=effect, treatment_share=treatment_share
    )
    srm_p = srm_p_value([control.n, treatment.n], [0.5, 0.5])
    outcomes = look(control, treatment, analysis, srm_p=srm_p)
    decided = np.flatnonzero(outcomes != Outcome.CONTINUE)
    enough = _enough(control, treatment, analysis.min_samples)
    srm_flagged = bool(np.any(enough & (srm_p < analysis.srm_threshold)))
    if decided.size == 0:
        return RunResult(Outcome.CONTINUE, None, srm_flagged)
    first = int(decided[0])
    return RunResult(Outcome(int(outcomes[first])), first + 1, srm_flagged)


def simulated_stats(
    rng: np.random.Generator,
    sim: SimulationSettings,
    analysis: AnalysisSettings,
    *,
    effect: float,
    treatment_share: float,
) -> tuple[VariantStats, VariantStats]:
    """One run's calls, the control's and the treatment's statistics after each. Under
    ``metric`` ``quality`` a failed call reports no quality (as a call that gave up), so
    the per-call rule (each such failure at 0) is what the run checks; otherwise every call
    reports one."""
    n = sim.events_per_run
    to_treatment = rng.random(n) < treatment_share
    mu = math.log(sim.control_mean_cost_usd) - sim.cost_log_sd**2 / 2
    cost = rng.lognormal(mu, sim.cost_log_sd, n) * np.where(to_treatment, 1.0 - effect, 1.0)
    success = (rng.random(n) < sim.success_rate).astype(float)
    quality = np.clip(rng.normal(sim.mean_quality, sim.quality_sd, n), 0.0, 1.0)
    has_quality = success if analysis.metric == "quality" else None
    return (
        cumulative_stats(~to_treatment, cost, success, quality, has_quality),
        cumulative_stats(to_treatment, cost, success, quality, has_quality),
    )


def _enough(control: VariantStats, treatment: VariantStats, min_samples: int) -> Any:
    return (np.asarray(control.n) >= min_samples) & (np.asarray(treatment.n) >= min_samples)


def validate(
    runs: int = 500,
    seed: int = 0,
    sim: SimulationSettings | None = None,
    analysis: AnalysisSettings | None = None,
) -> dict[str, Any]:
    """Run ``runs`` A/A, A/B and SRM simulations each; the figures and the settings used."""
    sim = sim or SimulationSettings()
    analysis = analysis or AnalysisSettings()
    rng = np.random.default_rng(seed)
    aa = [simulate_run(rng, sim, analysis, effect=0.0, treatment_share=0.5) for _ in range(runs)]
    ab = [
        simulate_run(rng, sim, analysis, effect=sim.effect, treatment_share=0.5)
        for _ in range(runs)
    ]
    srm = [
        simulate_run(rng, sim, analysis, effect=0.0, treatment_share=sim.srm_actual_share)
        for _ in range(runs)
    ]
    false_positives = sum(r.outcome in (Outcome.TREATMENT_WINS, Outcome.CONTROL_WINS) for r in aa)
    ab_wins = [r for r in ab if r.outcome == Outcome.TREATMENT_WINS]
    fpr = false_positives / runs
    return {
        "aa_false_positive_rate": fpr,
        "aa_false_positive_rate_mc_error": math.sqrt(analysis.alpha * (1 - analysis.alpha) / runs),
        "aa_guardrail_stop_rate": sum(r.outcome == Outcome.GUARDRAIL_BROKEN for r in aa) / runs,
        "aa_srm_false_alarm_rate": sum(r.srm_flagged for r in aa) / runs,
        "ab_power": len(ab_wins) / runs,
        "ab_wrong_winner_rate": sum(r.outcome == Outcome.CONTROL_WINS for r in ab) / runs,
        "mean_samples_to_decision": (
            float(np.mean([r.samples for r in ab_wins])) if ab_wins else None
        ),
        "srm_detection_rate": sum(r.srm_flagged for r in srm) / runs,
        "srm_runs_decided": sum(r.outcome != Outcome.CONTINUE for r in srm) / runs,
        "settings": {
            "runs": runs,
            "seed": seed,
            "looks": "after every event",
            "analysis": asdict(analysis),
            "simulation": asdict(sim),
        },
    }
