"""The optimizer's domain errors; each ``code`` is stable for API clients."""

from __future__ import annotations

from finops.common.errors import FinopsError, NotFound


class OptimizerError(FinopsError):
    """Base of the optimizer's domain errors; ``code`` is stable for API clients."""

    code = "optimizer_error"


class NoArms(NotFound, OptimizerError):
    code = "no_arms"


class UnknownBudget(NotFound, OptimizerError):
    code = "unknown_budget"
