"""First looks charged to the quality slack: how much of an arm's first outcomes on a task
exploration may take outside the slack budget under a fleet quality target.

An arm's first ``first_look`` outcomes on a task are exempt from the slack budget
(:func:`.slack.fit_slack`): an estimate resting on the prior alone says nothing about what
exploring the arm gives up.  But each look costs the quality the arm falls short of the greedy
one, whatever the budget says: at a 1 % target, three looks of ten weak arms on each of thirty
task types spend several times what the target leaves before the plan can make up for it.

The rule (``PolicyConfig.first_look_slack_z``, ``z``): the first looks of a request are exempt
only for as much as their cost fits what the target leaves.  A look of arm ``i`` costs
``q_greedy - (q_i - z sd_i)`` -- the greedy estimate less the arm's estimate lowered by ``z``
standard deviations, which before the first pull is its prior (pooled from sibling task types
or from the arm's other families).  ``z = 0``, the default, charges the expected cost: on the
11-model synthetic set at 0.99 the pessimistic cost (``z = 1``) also charged a strong arm
with an unlucky start once it had dropped out of the reference candidates, and one seed
settled on the second-best arm as the reference (ratio 0.900).  The charged looks together may
cost at most the slack allowance per request (:func:`.slack.slack_allowance`: a share of
``1 - target`` of the greedy quality, or of the plan's headroom when that is less).  When they
cost more, the first looks of the arms that cannot be the fleet's best one (not a reference
candidate of the last re-plan) are scaled down alike to fit; an arm that may be the best is
looked at whatever it costs, the target being measured against it.  The allowance is
``1 - target`` times the greedy quality: five times larger at 0.95 than at 0.99, so looks the
slack pays for are unchanged and a strict target looks at an arm known to be weak
rarely, and late -- after its siblings' outcomes have given it a prior that counts as looks
(``first_look_counts_prior``) or the plan has built headroom.  Identification of an arm that
may beat the best by more than the slack (``identify_beyond_slack``) is not a first look and
is not scaled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .config import PolicyConfig
from .estimates import Estimates

__all__ = ["charge_first_looks"]


def charge_first_looks(
    config: PolicyConfig,
    est: Estimates,
    g: int,
    first_look: Sequence[float],
    charged: Sequence[bool],
    allowance: float,
) -> list[float]:
    """The exempt first-look probabilities ``first_look`` (index-aligned with ``est``), those
    of the ``charged`` arms scaled down alike so that their pessimistic cost per request fits
    ``allowance`` (``first_look_slack_z`` ``None``: unchanged).

    Examples
    --------
    >>> est = Estimates([0.8, 0.75, 0.3], [0.0004, 0.01, 0.04], [1.0] * 3, [None] * 3)
    >>> config = PolicyConfig(fleet_quality_target=0.99, first_look_slack_z=1.0)
    >>> # pessimistic costs 0.15 and 0.7: 0.02 x 0.85 = 0.017 per request, over 0.004
    >>> looks, every = [0.0, 0.02, 0.02], [False, True, True]
    >>> [round(p, 4) for p in charge_first_looks(config, est, 0, looks, every, 0.004)]
    [0.0, 0.0047, 0.0047]
    >>> charge_first_looks(config, est, 0, looks, every, 0.02)  # fits: as it was
    [0.0, 0.02, 0.02]
    >>> # arm 1 may be the fleet's best arm: its look is free, arm 2's alone must fit
    >>> one = [False, False, True]
    >>> [round(p, 4) for p in charge_first_looks(config, est, 0, looks, one, 0.004)]
    [0.0, 0.02, 0.0057]
    >>> legacy = PolicyConfig(fleet_quality_target=0.99, first_look_slack_z=None)
    >>> charge_first_looks(legacy, est, 0, looks, every, 0.004)
    [0.0, 0.02, 0.02]
    """
    z = config.first_look_slack_z
    looks = list(first_look)
    if z is None:
        return looks
    qs, vs = est.quality, est.variance
    cost = sum(
        p * max(qs[g] - (qs[i] - z * math.sqrt(vs[i])), 0.0)
        for i, p in enumerate(looks)
        if i != g and charged[i]
    )
    if cost <= allowance:
        return looks
    scale_down = max(allowance, 0.0) / cost
    return [p * scale_down if charged[i] else p for i, p in enumerate(looks)]
