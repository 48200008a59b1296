"""A replica's view of every partition's learning: what the API answers from when the
optimizer's learning is partitioned by task type (pure domain code, no I/O).

Each partition of the optimizer's internal topic holds the task types whose key lands there,
and its owner publishes the partition's engine state. A :class:`FleetView` is built from the
latest of those states, one :class:`~.engine.OptimizerEngine` per partition, and answers like
one engine that had seen every event:

* a task type's partition is its family's (:func:`partition_of_task`), so the partition's
  engine holds everything the policy pools for it; a recommendation comes from that engine,
  with budget pacing from the fleet-wide budgets (quality estimates may differ slightly from
  one worker's: the family priors are refit on a schedule counted by each engine's updates);
* spend analytics and budgets are the merge of the partitions' (each saw a disjoint share of
  the events), so totals, windows and budget spend are the fleet's;
* with a fleet quality target, one shadow price is planned over every partition's task
  types when the view is built (:func:`~.policy.planner.plan_fleet_price`: their task states
  united, their planning windows merged in proportion to their traffic, each request estimated
  by its own partition) and installed in every partition's engine, so the fleet is held to
  the target as a whole, not each partition to it over its own task types;
* operator settings (catalog, objectives, budget definitions) reach every partition (see
  :mod:`finops.optimizer.service_layer.commands`), so any partition's copy is the fleet's.

A view is read-only: it is rebuilt from newer states, never fed events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from finops.common.partitions import partition_for
from finops.optimizer.domain.analytics import SpendAnalytics
from finops.optimizer.domain.budgets import Budget, BudgetTracker
from finops.optimizer.domain.engine import ArmSpec, OptimizerEngine, Recommendation
from finops.optimizer.domain.policy import Objective, PolicyConfig
from finops.optimizer.domain.policy.keys import family_of
from finops.optimizer.domain.policy.persistence import enc_inf
from finops.optimizer.domain.policy.planner import PlanShare, plan_fleet_price


def partition_of_task(task_type: str, partitions: int) -> int:
    """The learning partition of a task type: its family's (``mmlu/x`` -> ``mmlu``), so the
    task types whose estimates the policy pools (its empirical-Bayes priors per family) are
    learned together.

    Examples
    --------
    >>> partition_of_task("mmlu/law", 6) == partition_of_task("mmlu/math", 6)
    True
    """
    return partition_for(family_of(task_type), partitions)


class FleetView:
    """Every partition's engine, answering as one.

    Parameters
    ----------
    engines
        The latest engine of each partition that has published one.
    partitions
        How many partitions the task types are spread over.
    blank
        The engine answering for a partition that has published nothing yet.
    published_status
        Each partition's planning status as it was published, taken before any view installed
        the fleet price in its engine (a reader keeps an engine across views until its
        partition publishes again); missing partitions are read from their engines.

    Examples
    --------
    >>> view = FleetView({}, 6, OptimizerEngine())
    >>> view.analytics.summary()["events"], view.tasks()
    (0, {})
    """

    def __init__(
        self,
        engines: Mapping[int, OptimizerEngine],
        partitions: int,
        blank: OptimizerEngine,
        published_status: Mapping[int, dict[str, Any]] | None = None,
    ) -> None:
        self.partitions = partitions
        self.engines = dict(engines)
        self.blank = blank
        parts = [self.engines[p] for p in sorted(self.engines)]
        self.analytics = (
            SpendAnalytics.merged(e.analytics for e in parts) if parts else blank.analytics
        )
        self.budgets = BudgetTracker.merged(e.budgets for e in parts) if parts else blank.budgets
        settings = parts[0] if parts else blank
        self.catalog: dict[str, ArmSpec] = dict(settings.catalog)
        self.withdrawn: set[str] = set(settings.withdrawn)
        self.arms: dict[str, ArmSpec] = {}
        for engine in parts:
            # list(): a copy taken at once (the view may be built on a thread while the API
            # adds to an engine's arms)
            for arm, spec in list(engine.arms.items()):
                self.arms.setdefault(arm, spec)
        #: each partition's own planning status, as published (before the fleet price)
        published = published_status or {}
        self.partition_status = {
            str(p): published[p] if p in published else e.policy_status()
            for p, e in sorted(self.engines.items())
        }
        #: the fleet plan's status; empty without a fleet quality target
        self.fleet_status: dict[str, Any] = {}
        if parts and settings.policy.config.fleet_quality_target is not None:
            self._plan_fleet_price(settings.policy.config)

    def plan_shares(self) -> list[PlanShare]:
        """Each partition's share of the fleet plan, over the task types it learns."""
        shares = []
        for partition, engine in sorted(self.engines.items()):
            share = engine.policy.plan_share()
            own = {
                task_type: task
                for task_type, task in share.tasks.items()
                if partition_of_task(task_type, self.partitions) == partition
            }
            shares.append(replace(share, tasks=own))
        return shares

    def _plan_fleet_price(self, config: PolicyConfig) -> None:
        """Plan one shadow price over every partition's task types; serve with it everywhere."""
        shares = self.plan_shares()
        price = plan_fleet_price(config, shares)
        for engine in self._every_engine():
            engine.policy.install_price(price)
        fleet = {"updates": sum(s.updates for s in shares), "mu": 0.0}
        if price is not None:
            fleet.update(price.info)
        self.fleet_status = {k: enc_inf(v) for k, v in fleet.items()}

    def engine_for(self, task_type: str) -> OptimizerEngine:
        """The engine of the partition that learns ``task_type``."""
        return self.engines.get(partition_of_task(task_type, self.partitions), self.blank)

    # ---- answering ---------------------------------------------------------------------

    def recommend(self, task_type: str, *args: Any, **kwargs: Any) -> Recommendation:
        """:meth:`OptimizerEngine.recommend` of the task type's partition, paced by the
        fleet's budgets."""
        engine = self.engine_for(task_type)
        if not engine.candidates(task_type):
            # a task family new to its partition: like one engine, offer every arm seen
            for arm, spec in self.arms.items():
                engine.arms.setdefault(arm, spec)
        return engine.recommend(task_type, *args, budgets=self.budgets, **kwargs)

    def request_rng(self, task_type: str, seed: int) -> Any:
        return self.engine_for(task_type).request_rng(task_type, seed)

    def tasks(self) -> dict[str, Any]:
        """What the policy believes per task type, from each task type's own partition."""
        found: dict[str, Any] = {}
        for partition, engine in self.engines.items():
            for task, belief in engine.tasks().items():
                if partition_of_task(task, self.partitions) == partition:
                    found[task] = belief
        return dict(sorted(found.items()))

    def policy_status(self) -> dict[str, Any]:
        """The fleet plan (shadow price, estimated quality ratio, ...; with a fleet quality
        target), the partitions' updates and task types summed, and each partition's own
        status as it published it (its price planned over its task types only)."""
        statuses = self.partition_status
        return {
            **self.fleet_status,
            "updates": sum(s.get("updates") or 0 for s in statuses.values()),
            "tasks": sum(s.get("tasks") or 0 for s in statuses.values()),
            "partitions": statuses,
        }

    def objectives(self) -> dict[str, dict[str, Any]]:
        return self._settings_engine().objectives()

    def _settings_engine(self) -> OptimizerEngine:
        return self.engines[min(self.engines)] if self.engines else self.blank

    # ---- operator changes, as this replica answers them (the owners apply them for good) ---

    def _every_engine(self) -> list[OptimizerEngine]:
        return [*self.engines.values(), self.blank]

    def add_catalog_arm(self, spec: ArmSpec) -> str:
        for engine in self._every_engine():
            engine.add_catalog_arm(spec)
        self.catalog[spec.arm_id] = spec
        self.withdrawn.discard(spec.arm_id)
        return spec.arm_id

    def remove_catalog_arm(self, arm: str) -> bool:
        for engine in self._every_engine():
            engine.remove_catalog_arm(arm)
        if self.catalog.pop(arm, None) is None:
            return False
        self.withdrawn.add(arm)
        return True

    def set_objective(self, scope: str, objective: Objective) -> None:
        for engine in self._every_engine():
            engine.set_objective(scope, objective)

    def set_budget(self, budget: Budget) -> None:
        self.budgets.set_budget(budget)

    def remove_budget(self, budget_id: str) -> None:
        self.budgets.remove_budget(budget_id)

    def has_budget(self, budget_id: str) -> bool:
        return self.budgets.get(budget_id) is not None

    def budget_status(self, budget_id: str) -> dict[str, Any]:
        return self.budgets.status(budget_id)
