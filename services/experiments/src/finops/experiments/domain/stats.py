"""Sufficient statistics of one experiment variant. Pure: no I/O.

Everything the analysis needs is a handful of running sums per variant, so the state of an
experiment is small, merges by addition, and can be checkpointed as plain data. The same
fields hold either plain numbers (the streaming analysis) or numpy arrays of cumulative sums,
one element per look (the simulations of ``finops experiments validate``), and every function
of :mod:`finops.experiments.domain.sequential` works on both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Latency histogram: geometric buckets from 1 ms to about 17 minutes (5 % wide), enough
# resolution for a p95 guardrail at a fixed, small size.
LATENCY_BUCKET_RATIO = 1.05
LATENCY_BUCKETS = 286


def latency_bucket(latency_ms: float) -> int:
    if latency_ms <= 1.0:
        return 0
    index = int(math.log(latency_ms) / math.log(LATENCY_BUCKET_RATIO)) + 1
    return min(index, LATENCY_BUCKETS - 1)


def bucket_upper_ms(index: int) -> float:
    return float(LATENCY_BUCKET_RATIO**index)


@dataclass
class VariantStats:
    """Running sums of one variant's events.

    ``cost_success_sum`` (the cost of the successful calls) gives the covariance of cost and
    success that the delta method needs for the variance of cost per success.
    """

    n: Any = 0
    successes: Any = 0
    cost_sum: Any = 0.0
    cost_sq_sum: Any = 0.0
    cost_success_sum: Any = 0.0
    quality_n: Any = 0
    quality_sum: Any = 0.0
    quality_sq_sum: Any = 0.0
    latency_counts: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)
    #: calls that failed with no quality reported (a call that gave up, among them): they
    #: delivered nothing, so the primary metric ``quality`` counts each as quality 0 and each
    #: other call at the reported mean (the ``min_quality_ratio`` guardrail compares the
    #: qualities reported, as before)
    unrated_failures: Any = 0
    #: calls answered after a fallback, on a model other than the variant's (counted in the
    #: variant, intention-to-treat; what they cost and scored is in the sums above)
    fallbacks: Any = 0

    def add(
        self,
        *,
        cost_usd: float,
        success: bool,
        latency_ms: float | None,
        quality: float | None,
        fell_back: bool = False,
    ) -> None:
        """Count one call; ``latency_ms`` None (a call that gave up: no answer came) leaves
        the latency histogram as it is; ``fell_back``: answered after a fallback."""
        self.n += 1
        if fell_back:
            self.fallbacks += 1
        self.cost_sum += cost_usd
        self.cost_sq_sum += cost_usd * cost_usd
        if success:
            self.successes += 1
            self.cost_success_sum += cost_usd
        if quality is not None:
            self.quality_n += 1
            self.quality_sum += quality
            self.quality_sq_sum += quality * quality
        elif not success:
            self.unrated_failures += 1
        if latency_ms is not None:
            self.latency_counts[latency_bucket(latency_ms)] += 1

    def p95_latency_ms(self) -> float | None:
        """Upper edge of the bucket holding the 95th percentile (≤ 5 % above the true one) of
        the calls that have a latency (the calls that gave up have none)."""
        timed = sum(self.latency_counts)
        if not timed:
            return None
        rank = math.ceil(0.95 * timed)
        seen = 0
        for index, count in enumerate(self.latency_counts):
            seen += count
            if seen >= rank:
                return bucket_upper_ms(index)
        return bucket_upper_ms(LATENCY_BUCKETS - 1)  # pragma: no cover - rank <= timed

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": int(self.n),
            "successes": int(self.successes),
            "cost_sum": float(self.cost_sum),
            "cost_sq_sum": float(self.cost_sq_sum),
            "cost_success_sum": float(self.cost_success_sum),
            "quality_n": int(self.quality_n),
            "quality_sum": float(self.quality_sum),
            "quality_sq_sum": float(self.quality_sq_sum),
            "latency_counts": {str(i): c for i, c in enumerate(self.latency_counts) if c},
            "unrated_failures": int(self.unrated_failures),
            "fallbacks": int(self.fallbacks),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantStats:
        counts = [0] * LATENCY_BUCKETS
        for index, count in data.get("latency_counts", {}).items():
            counts[int(index)] = int(count)
        return cls(
            n=int(data["n"]),
            successes=int(data["successes"]),
            cost_sum=float(data["cost_sum"]),
            cost_sq_sum=float(data["cost_sq_sum"]),
            cost_success_sum=float(data["cost_success_sum"]),
            quality_n=int(data["quality_n"]),
            quality_sum=float(data["quality_sum"]),
            quality_sq_sum=float(data["quality_sq_sum"]),
            latency_counts=counts,
            # a state saved before the count: the failures counted then stay out of the mean
            unrated_failures=int(data.get("unrated_failures", 0)),
            fallbacks=int(data.get("fallbacks", 0)),  # none counted before the count
        )


def cumulative_stats(
    in_variant: np.ndarray,
    cost: np.ndarray,
    success: np.ndarray,
    quality: np.ndarray,
    has_quality: np.ndarray | None = None,
    base: VariantStats | None = None,
) -> VariantStats:
    """The statistics of one variant after each event of a stream of events, as arrays.

    Element ``t`` holds ``base`` plus the sums over events ``0..t`` that went to this
    variant: the look after event ``t``. Latency is left out (the histogram stays ``base``'s).
    ``has_quality`` None: every event reports a quality.
    """
    base = base or VariantStats()
    mask = in_variant.astype(float)
    won = mask * success
    rated = mask if has_quality is None else mask * has_quality
    unrated_failures = (mask - rated) * (1.0 - success)
    q = np.where(rated > 0, quality, 0.0)
    return VariantStats(
        n=base.n + np.cumsum(mask),
        successes=base.successes + np.cumsum(won),
        cost_sum=base.cost_sum + np.cumsum(mask * cost),
        cost_sq_sum=base.cost_sq_sum + np.cumsum(mask * cost * cost),
        cost_success_sum=base.cost_success_sum + np.cumsum(won * cost),
        quality_n=base.quality_n + np.cumsum(rated),
        quality_sum=base.quality_sum + np.cumsum(rated * q),
        quality_sq_sum=base.quality_sq_sum + np.cumsum(rated * q * q),
        latency_counts=base.latency_counts,
        unrated_failures=base.unrated_failures + np.cumsum(unrated_failures),
        fallbacks=base.fallbacks,  # no rule reads them
    )
