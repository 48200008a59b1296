"""What made an explored pick: :class:`Mechanism`, the step of the exploration
(:mod:`.exploration`) that gave an arm its choice probability, and how two prices' choices mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

__all__ = ["Mechanism", "mixed_mechanisms"]


class Mechanism(StrEnum):
    """What gave a non-greedy arm its choice probability: the last step of
    :func:`.exploration.choice_probs` that raised it -- or, when the slack budget lowered the
    arm to a rate it keeps whatever the budget (the floor, an identification rate kept beyond
    the slack), that.  Caps may have lowered the probability since.

    Examples
    --------
    >>> Mechanism.IDENTIFY.value
    'identification'
    >>> f"explore ({Mechanism.FAIR_TRIAL}, p=0.020)"
    'explore (fair_trial, p=0.020)'
    """

    #: its chance of beating the greedy arm (Thompson sampling)
    THOMPSON = "thompson"
    #: it may be materially better than the apparent best arm
    IDENTIFY = "identification"
    #: the fleet's reference arm, sampled where one more outcome of it is worth its cost
    AUDIT = "reference_audit"
    #: a cheaper arm near the quality the fleet target asks for, until the test decides
    THRESHOLD_TEST = "threshold_test"
    #: an arm whose evidence on the task is still thin
    FAIR_TRIAL = "fair_trial"
    #: the exploration floor that keeps every propensity positive (raised after a drift)
    FLOOR = "floor"


def mixed_mechanisms(
    lo_probs: Sequence[float],
    lo_mechanisms: Sequence[Mechanism | None],
    hi_probs: Sequence[float],
    hi_mechanisms: Sequence[Mechanism | None],
    f: float,
) -> list[Mechanism | None]:
    """What gave each arm its probability when the choices at two prices are mixed (the ``hi``
    one with weight ``f``): that of the side the arm is likelier to be drawn from.

    Examples
    --------
    >>> lo = [0.9, 0.1, 0.0], [None, Mechanism.THOMPSON, None]
    >>> hi = [0.2, 0.0, 0.8], [Mechanism.AUDIT, None, None]
    >>> [str(m) for m in mixed_mechanisms(*lo, *hi, f=0.3)]
    ['None', 'thompson', 'None']
    >>> [str(m) for m in mixed_mechanisms(*lo, *hi, f=0.9)]  # arm 0 is drawn mostly from hi
    ['reference_audit', 'thompson', 'None']
    """
    return [
        m_lo if (1.0 - f) * p_lo >= f * p_hi else m_hi
        for p_lo, p_hi, m_lo, m_hi in zip(
            lo_probs, hi_probs, lo_mechanisms, hi_mechanisms, strict=True
        )
    ]
