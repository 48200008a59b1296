"""Sample-ratio mismatch: are the variants getting the share of units they were declared?

A split that is off (a buggy assignment, a variant whose events get lost) biases every
comparison, so while the chi-square goodness-of-fit test rejects the declared weights at
``SRM_P_THRESHOLD`` no decision is taken. The threshold is strict (0.001, as GrowthBook,
Statsig and Optimizely use) because the check runs at every look. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

SRM_P_THRESHOLD = 0.001


def srm_p_value(counts: Sequence[Any], weights: Sequence[float]) -> Any:
    """Chi-square p-value of the observed counts against the declared weights.

    ``counts`` holds one number (or one array of cumulative counts, a look per element) per
    variant. Where no unit has been counted yet the p-value is 1 (nothing is off).
    """
    observed = np.asarray([np.asarray(c, dtype=float) for c in counts])
    total = observed.sum(axis=0)
    expected = np.multiply.outer(np.asarray(weights, dtype=float), total)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(expected > 0, (observed - expected) ** 2 / expected, 0.0).sum(axis=0)
    # chdtrc is the chi-square survival function (scipy.stats.chi2.sf) without the
    # distribution object's overhead, which dominated a look on the stream.
    p_value = special.chdtrc(len(weights) - 1, statistic)
    return np.where(total > 0, p_value, 1.0)


def srm_ok(p_value: Any) -> Any:
    return np.asarray(p_value) >= SRM_P_THRESHOLD
