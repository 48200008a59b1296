"""Operator commands: change the engine, then checkpoint it, in one place.

An operator change (a catalog arm, an objective, a budget) must survive a restart the moment
it is acknowledged, so each command applies its change to the live engine and then saves a
checkpoint before it returns. The routes call these commands; none touches the engine's
settings or the checkpoint directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from finops.optimizer.domain.budgets import Budget
from finops.optimizer.domain.engine import ArmSpec, OptimizerEngine
from finops.optimizer.domain.policy import Objective

Result = TypeVar("Result")


class CheckpointedEngine(Protocol):
    """The live engine and the checkpoint that makes its state durable (the event intake)."""

    @property
    def engine(self) -> OptimizerEngine: ...

    async def checkpoint(self) -> None: ...


class OperatorCommands:
    """Every operator change to the engine; each returns once its checkpoint is saved."""

    def __init__(self, intake: CheckpointedEngine) -> None:
        self._intake = intake

    async def _apply(self, change: Callable[[OptimizerEngine], Result]) -> Result:
        # Read the engine at call time: restoring a checkpoint replaces the engine object.
        result = change(self._intake.engine)
        await self._intake.checkpoint()
        return result

    async def offer_arm(self, spec: ArmSpec) -> ArmSpec:
        """Offer ``spec`` to every task (again, if it was withdrawn)."""
        await self._apply(lambda engine: engine.add_catalog_arm(spec))
        return spec

    async def withdraw_arm(self, arm: str) -> bool:
        """Withdraw a catalog arm; False (and nothing saved) when it is not in the catalog."""
        if arm not in self._intake.engine.catalog:
            return False
        return await self._apply(lambda engine: engine.remove_catalog_arm(arm))

    async def set_objective(self, scope: str, objective: Objective) -> dict[str, Any]:
        """Set the objective of ``scope``; the objective as the engine now holds it."""

        def change(engine: OptimizerEngine) -> dict[str, Any]:
            engine.set_objective(scope, objective)
            return engine.objectives()[scope]

        return await self._apply(change)

    async def put_budget(self, budget: Budget) -> dict[str, Any]:
        """Create or replace ``budget``; its status right after the change."""

        def change(engine: OptimizerEngine) -> dict[str, Any]:
            engine.set_budget(budget)
            return engine.budgets.status(budget.id)

        return await self._apply(change)

    async def delete_budget(self, budget_id: str) -> bool:
        """Delete a budget; False (and nothing saved) when there is none with that id."""
        if self._intake.engine.budgets.get(budget_id) is None:
            return False
        await self._apply(lambda engine: engine.remove_budget(budget_id))
        return True
