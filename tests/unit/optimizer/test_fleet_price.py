"""One fleet-wide shadow price over the learning partitions (issue 14): the planner's shares,
and a FleetView's fleet price against one engine fed every event."""

from __future__ import annotations

import doctest

from finops.optimizer.domain.policy import planner as planner_mod


def test_planner_docstring_examples_run():
    result = doctest.testmod(planner_mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
