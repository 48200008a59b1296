"""The reference learner of issue 15: per-task Thompson sampling with a fixed cost penalty.

Issue 15 compares the routing policy with "per-task Thompson sampling with a cost penalty". This
module replays an outcomes file through that learner, with the same prompt order per seed as
``finops backtest``, and sweeps the penalty: :func:`frontier` reports, per quality target, the
penalty that saves most while missing the target (ratio more than ``tolerance`` below it) in at
most a tenth of the seeds -- the penalty picked *in hindsight*, per file and target, on the very
seeds it is scored on, which no online learner can do.  The learner is also told every model's
mean cost per prompt on each task type, as the file has it, before its first call, so its figures
are an upper reference for that family of learners, not what a user of it would reach.

Each (task type, model) has a Beta(1, 1) prior; an outcome ``q`` in [0, 1] adds ``q`` to the
first parameter and ``1 - q`` to the second.  A request goes to the model with the highest
``draw - penalty x cost / unit``, ``unit`` being the best single model's mean cost per prompt
(1 USD when that model is free).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from finops.optimizer.domain.backtest import Outcomes, best_single_model

__all__ = ["PENALTIES", "BaselineRun", "FrontierPoint", "frontier", "replay"]

#: penalties swept, in quality per best-model cost per prompt: 0 is Thompson sampling on quality
#: alone; at 0.1 a model as dear as the best must draw 0.1 higher than a free one to be chosen
PENALTIES: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class BaselineRun:
    """One replay: quality and cost against the best single model of the file."""

    penalty: float
    seed: int
    quality_ratio: float
    saving: float


@dataclass(frozen=True)
class FrontierPoint:
    """The penalty chosen for one target, and its runs' summary."""

    target: float
    penalty: float
    ratio_mean: float
    ratio_worst: float
    saving_mean: float
    misses: int
    runs: int
    #: this penalty missed the target in at most a tenth of its runs (else: no penalty did)
    holds: bool


@dataclass
class _Posterior:
    successes: float = 1.0
    failures: float = 1.0


def _mean_costs(data: Outcomes) -> dict[tuple[str, str], float]:
    """Every (task type, model)'s mean cost per prompt in the file, known to the learner."""
    tally: dict[tuple[str, str], list[float]] = {}
    for rec in data.prompts:
        for m, (_q, c) in rec.outcomes.items():
            t = tally.setdefault((rec.task_type, m), [0.0, 0.0])
            t[0] += c
            t[1] += 1
    return {key: total / n for key, (total, n) in tally.items()}


def replay(data: Outcomes, penalty: float, seed: int) -> BaselineRun:
    """Replay ``data`` through the learner at one ``penalty`` and ``seed``.

    Examples
    --------
    >>> from finops.optimizer.domain.backtest import PromptRecord
    >>> good = {"big": (1.0, 0.01), "small": (0.0, 0.001)}
    >>> data = Outcomes([PromptRecord(f"p{i}", "t", "", None, dict(good)) for i in range(200)],
    ...                 ["big", "small"])
    >>> run = replay(data, 0.0, seed=1)  # quality alone: "small" never answers, so "big" wins
    >>> run.quality_ratio > 0.95, round(run.saving, 2) < 0.05
    (True, True)
    >>> round(replay(data, 2.0, seed=1).saving, 6)  # a penalty above the quality gap: the cheap one
    0.9
    """
    best = best_single_model(data)
    best_quality, best_cost = best.quality, best.cost_per_prompt
    unit = best_cost if best_cost > 0 else 1.0
    prices = _mean_costs(data)
    order = list(range(len(data.prompts)))
    random.Random(seed).shuffle(order)  # the prompt order of run_backtest at this seed
    # the posterior draws from a stream of their own: the order above is the policy's
    draws = random.Random(seed + 1_000_003)
    posteriors: dict[tuple[str, str], _Posterior] = {}
    quality = cost = 0.0
    for idx in order:
        rec = data.prompts[idx]

        def score(model: str, task_type: str = rec.task_type) -> float:
            post = posteriors.setdefault((task_type, model), _Posterior())
            draw = draws.betavariate(post.successes, post.failures)
            return draw - penalty * prices[(task_type, model)] / unit

        model = max(sorted(rec.outcomes), key=score)
        q, c = rec.outcomes[model]
        post = posteriors[(rec.task_type, model)]
        post.successes += q
        post.failures += 1.0 - q
        quality += q
        cost += c
    n = len(order)
    # as the policy's backtest reports them: 0 against a best model of quality 0 or cost 0
    ratio = quality / (n * best_quality) if best_quality > 0 else 0.0
    saving = 1.0 - cost / (n * best_cost) if best_cost > 0 else 0.0
    return BaselineRun(penalty, seed, ratio, saving)


def frontier(
    runs: Sequence[BaselineRun], targets: Sequence[float], tolerance: float
) -> list[FrontierPoint]:
    """Per target, the penalty of highest mean saving (the lower penalty on a tie) among those
    that miss the target in at most a tenth of their runs -- with fewer than ten runs, in none;
    when none does, the penalty that misses least, then the one of highest mean quality ratio
    (``holds`` False).

    Examples
    --------
    >>> runs = [BaselineRun(0.0, s, 0.99, 0.1) for s in range(10)]
    >>> runs += [BaselineRun(0.1, s, 0.96 - 0.02 * (s == 0), 0.6) for s in range(10)]
    >>> [(p.target, p.penalty, p.misses, p.holds) for p in frontier(runs, [0.95, 0.99], 0.005)]
    [(0.95, 0.1, 1, True), (0.99, 0.0, 0, True)]
    >>> frontier(runs, [0.999], 0.005)[0].holds
    False
    """
    by_penalty: dict[float, list[BaselineRun]] = {}
    for run in runs:
        by_penalty.setdefault(run.penalty, []).append(run)
    points = []
    for target in targets:
        options = []
        for penalty, group in sorted(by_penalty.items()):
            ratios = [r.quality_ratio for r in group]
            misses = sum(r < target - tolerance for r in ratios)
            options.append(
                FrontierPoint(
                    target,
                    penalty,
                    statistics.fmean(ratios),
                    min(ratios),
                    statistics.fmean(r.saving for r in group),
                    misses,
                    len(group),
                    holds=misses <= len(group) / 10,
                )
            )
        held = [p for p in options if p.holds]
        if held:
            points.append(max(held, key=lambda p: (p.saving_mean, -p.penalty)))
        else:
            points.append(min(options, key=lambda p: (p.misses, -p.ratio_mean)))
    return points
