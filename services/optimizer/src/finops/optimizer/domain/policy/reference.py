"""Which arm the fleet plan is anchored to: the *reference arm*.

The fleet target is measured against the best single arm in hindsight; the planner anchors its
plan to the arm it takes for that one.  Arms cheaper than the reference pay the switch charge
(``switch_risk_z``), the reference is audited where its estimate needs it, and the aim's margin
is its own uncertainty.  Picked by the highest estimated total alone, the reference was, after
an unlucky start of the best arms, whichever thin arm had been luckiest: among a dozen arms, the
highest of many thin estimates is biased up, and the plan then served that arm uncharged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .config import PolicyConfig
from .task import TaskState
from .totals import RefTotal

__all__ = ["choose_reference"]


def choose_reference(
    config: PolicyConfig, tots: Mapping[str, RefTotal], tasks: Mapping[str, TaskState]
) -> str:
    """The fleet's reference arm: the highest total lowered by ``reference_lower_bound_z``
    standard deviations, if that arm is at least as dear as the arm of the highest estimate
    on the task types both have served; else the latter.

    A lower bound prefers the arm whose evidence says it is good to the one that merely got
    lucky; but it also prefers the arm that has had the traffic.  A cheaper arm is never made
    the reference on the strength of its evidence alone: that would relieve it of the switch
    charge, and on MT-Bench the 42 x cheaper model, winner of a cold start, would be served
    uncharged.  ``reference_lower_bound_z`` ``None``: the highest estimate (older checkpoints).

    Examples
    --------
    >>> from finops.optimizer.domain.policy.task import TaskState
    >>> from finops.optimizer.domain.arms import ArmStats
    >>> task = TaskState(family="qa")
    >>> for arm, cost in [("big", 0.01), ("small", 0.001)]:
    ...     task.arms[arm] = ArmStats()
    ...     _ = task.arms[arm].cost.add(None, cost)
    >>> tots = {  # on a thousand requests: the dear arm well known, the cheap one after a lucky few
    ...     "big": RefTotal(800.0, 15.0**2),
    ...     "small": RefTotal(820.0, 90.0**2),
    ... }
    >>> choose_reference(PolicyConfig(), tots, {"qa": task})
    'big'
    >>> choose_reference(PolicyConfig(reference_lower_bound_z=None), tots, {"qa": task})
    'small'
    >>> # the other way round, the cheap arm's bound is the highest: the dearer leader stays
    >>> tots = {"big": RefTotal(830.0, 90.0**2), "small": RefTotal(820.0, 15.0**2)}
    >>> choose_reference(PolicyConfig(), tots, {"qa": task})
    'big'
    """
    leader = _highest(tots, 0.0)
    z = config.reference_lower_bound_z
    if z is None:
        return leader
    bound = _highest(tots, z)
    if bound != leader and _at_least_as_dear(tasks, bound, leader):
        return bound
    return leader


def _highest(tots: Mapping[str, RefTotal], z: float) -> str:
    """Key of the highest total lowered by ``z`` standard deviations (ties: the larger name)."""
    return max(tots, key=lambda a: (tots[a].total - z * math.sqrt(tots[a].variance), a))


def _at_least_as_dear(tasks: Mapping[str, TaskState], arm: str, other: str) -> bool:
    """Whether ``arm``'s mean cost per request, summed over the task types where both arms
    have been called, is at least ``other``'s (``False`` where they share none: an arm called
    on more task types is not thereby the dearer one).

    Examples
    --------
    >>> from finops.optimizer.domain.arms import ArmStats
    >>> both, one = TaskState(family="x"), TaskState(family="x")
    >>> for task, costs in [(both, {"cheap": 0.001, "dear": 0.01}), (one, {"cheap": 0.02})]:
    ...     for arm, cost in costs.items():
    ...         task.arms[arm] = ArmStats()
    ...         _ = task.arms[arm].cost.add(None, cost)
    >>> _at_least_as_dear({"both": both, "one": one}, "cheap", "dear")  # 0.001 against 0.01
    False
    >>> _at_least_as_dear({"one": one}, "cheap", "dear")  # nothing shared: not the dearer
    False
    """
    mine = theirs = 0.0
    shared = False
    for task in tasks.values():
        a, b = task.arms.get(arm), task.arms.get(other)
        if a is None or b is None or a.cost.n <= 0 or b.cost.n <= 0:
            continue
        shared = True
        mine += a.cost.mean_cost
        theirs += b.cost.mean_cost
    return shared and mine >= theirs
