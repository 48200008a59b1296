"""Which variant a unit gets: sticky salted hashing for fixed splits, Thompson sampling for
bandits, always with the probability of the variant given (its propensity). Pure: no I/O.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Sequence

import numpy as np

from finops.experiments.domain.sequential import (
    LOWER_IS_BETTER,
    Metric,
    answers_judge,
    log_estimate,
    quality_is_nil,
)
from finops.experiments.domain.stats import VariantStats

# Bandit allocation starts from the declared weights until every variant has this many
# events, and never gives a variant less than this share of the traffic (so the analysis
# and off-policy estimates keep seeing every variant).
BANDIT_WARMUP = 30
BANDIT_MIN_SHARE = 0.02
THOMPSON_DRAWS = 4000


def unit_hash(salt: str, unit: str) -> float:
    """A uniform number in [0, 1) fixed by (salt, unit): the same unit always lands the same."""
    digest = hashlib.blake2b(f"{salt}\x00{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def figures_rng(experiment_id: str) -> np.random.Generator:
    """The draws of an experiment's Monte-Carlo figures (``probability_best``, a bandit's
    allocation), seeded by its id: the same statistics give the same figures on every request
    and every replica, so a unit keeps its variant while no event comes in."""
    return np.random.default_rng(int(unit_hash("results", experiment_id) * 2**32))


def pick(weights: Sequence[float], u: float) -> int:
    """The index whose cumulative-weight slot holds ``u`` (plain Python: it runs per request)."""
    edges = list(itertools.accumulate(weights))
    return min(bisect.bisect_right(edges, u * edges[-1]), len(edges) - 1)


def probability_best(
    stats: Sequence[VariantStats],
    metric: Metric,
    rng: np.random.Generator,
    draws: int = THOMPSON_DRAWS,
) -> list[float]:
    """Posterior probability that each variant has the best metric (normal approximation of
    the log metric); equal shares while some variant has no usable data. Under ``quality`` a
    variant every call of which failed without a quality (0 for certain, no log) is never
    best while another is not so: the others share the draws."""
    if metric == "quality":
        nil = [bool(quality_is_nil(s)) for s in stats]
        if any(nil) and not all(nil):
            others = [s for s, z in zip(stats, nil, strict=True) if not z]
            live = iter(probability_best(others, metric, rng, draws))
            return [0.0 if z else next(live) for z in nil]
    means = []
    sds = []
    for s in stats:
        est = log_estimate(s, metric)
        means.append(float(est.log_value))
        sds.append(float(np.sqrt(est.variance)))
    if not all(np.isfinite(means)) or not all(np.isfinite(sds)):
        return [1.0 / len(stats)] * len(stats)
    samples = rng.normal(np.asarray(means), np.asarray(sds), size=(draws, len(stats)))
    best = samples.argmin(axis=1) if LOWER_IS_BETTER[metric] else samples.argmax(axis=1)
    counts = np.bincount(best, minlength=len(stats))
    return [float(c) / draws for c in counts]


def thompson_propensities(
    stats: Sequence[VariantStats],
    weights: Sequence[float],
    metric: Metric,
    rng: np.random.Generator,
) -> list[float]:
    """Thompson sampling's allocation: each variant's probability of being best, floored at
    ``BANDIT_MIN_SHARE`` and renormalised; the declared weights during warm-up: until every
    variant has ``BANDIT_WARMUP`` events and, under ``quality``, ``MIN_RATED_ANSWERS`` scored
    answers (none for a variant that failed every call: it delivers 0 for certain), as the
    decision rules wait for them (from one scored answer a variance of 0 gave whichever
    scored higher a probability_best of 1)."""
    warm = min(int(s.n) for s in stats) >= BANDIT_WARMUP
    if metric == "quality":
        warm = warm and all(bool(answers_judge(s)) for s in stats)
    if not warm:
        total = float(sum(weights))
        return [w / total for w in weights]
    raw = np.maximum(np.asarray(probability_best(stats, metric, rng)), BANDIT_MIN_SHARE)
    return [float(p) for p in raw / raw.sum()]
