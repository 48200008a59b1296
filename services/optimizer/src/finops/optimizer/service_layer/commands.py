"""Operator commands: a change to what the optimizer learns with, made durable in one place.

An operator change (a catalog arm, an objective, a budget) must survive a restart the moment
it is acknowledged. Each command is an :class:`OperatorChange`, a serialisable value; the
routes call :class:`OperatorCommands`, which hands it to the :class:`ChangeTarget` of the
process: with one worker the event intake applies it to the live engine and checkpoints it;
with learning partitioned by task type, the change is written to every partition of the
internal topic (each partition's owner applies it in order with the events) and the answer
comes from the replica's view. None of the routes touches an engine's settings directly.

Both kinds of learning also record every change in one place of their own, a
:class:`SettingsLedger` (PostgreSQL's ``optimizer_settings``: the latest change of each
setting, numbered from one sequence), before they apply it: a mode that starts after running
the other one takes, with :func:`reconcile`, the changes it has not seen, and an engine
applies a numbered change only when it has applied none as new for the same setting
(:func:`settle`), so an older value never overrides a newer one, whichever way it arrives.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

from finops.optimizer.domain.budgets import Budget
from finops.optimizer.domain.engine import ArmSpec, OptimizerEngine
from finops.optimizer.domain.policy import Objective

log = logging.getLogger(__name__)

ChangeKind = Literal["offer_arm", "withdraw_arm", "set_objective", "put_budget", "delete_budget"]


class Configurable(Protocol):
    """What a change is applied to: an engine, or a replica's view of every partition."""

    catalog: dict[str, ArmSpec]

    def add_catalog_arm(self, spec: ArmSpec) -> str: ...

    def remove_catalog_arm(self, arm: str) -> bool: ...

    def set_objective(self, scope: str, objective: Objective) -> None: ...

    def objectives(self) -> dict[str, dict[str, Any]]: ...

    def set_budget(self, budget: Budget) -> None: ...

    def remove_budget(self, budget_id: str) -> None: ...

    def budget_status(self, budget_id: str) -> dict[str, Any]: ...

    def has_budget(self, budget_id: str) -> bool: ...


@dataclass(frozen=True)
class OperatorChange:
    """One operator change and its arguments, as JSON travels.

    Examples
    --------
    >>> change = OperatorChange.offer_arm(ArmSpec("gpt-4o-mini", "openai"))
    >>> OperatorChange.from_json(change.to_json()) == change
    True
    """

    kind: ChangeKind
    args: dict[str, Any] = field(default_factory=dict)
    #: its number in the :class:`SettingsLedger` (None: not recorded, as written by a version
    #: before the ledger)
    seq: int | None = None

    @property
    def key(self) -> str:
        """The setting it changes: a catalog arm, an objective's scope or a budget.

        >>> OperatorChange.withdraw_arm("m|p|default").key
        'arm:m|p|default'
        >>> OperatorChange.offer_arm(ArmSpec("m", "p")).key
        'arm:m|p|default'
        """
        args = self.args
        if self.kind == "offer_arm":
            spec = ArmSpec(args["model"], args["provider"], dict(args.get("config") or {}))
            return f"arm:{spec.arm_id}"
        if self.kind == "withdraw_arm":
            return f"arm:{args['arm']}"
        if self.kind == "set_objective":
            return f"objective:{args['scope']}"
        if self.kind in ("put_budget", "delete_budget"):
            return f"budget:{args['id']}"
        raise ValueError(f"unknown operator change {self.kind!r}")

    def numbered(self, seq: int) -> OperatorChange:
        """This change as the ledger numbered it."""
        return replace(self, seq=seq)

    @classmethod
    def offer_arm(cls, spec: ArmSpec) -> OperatorChange:
        return cls("offer_arm", asdict(spec))

    @classmethod
    def withdraw_arm(cls, arm: str) -> OperatorChange:
        return cls("withdraw_arm", {"arm": arm})

    @classmethod
    def set_objective(cls, scope: str, objective: Objective) -> OperatorChange:
        return cls("set_objective", {"scope": scope, "objective": asdict(objective)})

    @classmethod
    def put_budget(cls, budget: Budget) -> OperatorChange:
        return cls("put_budget", {**asdict(budget), "alert_thresholds": budget.alert_thresholds})

    @classmethod
    def delete_budget(cls, budget_id: str) -> OperatorChange:
        return cls("delete_budget", {"id": budget_id})

    def apply(self, target: Configurable) -> Any:
        """Apply the change; what the command answers (the arm, the objective, ...)."""
        args = self.args
        if self.kind == "offer_arm":
            spec = ArmSpec(args["model"], args["provider"], dict(args.get("config") or {}))
            target.add_catalog_arm(spec)
            return spec
        if self.kind == "withdraw_arm":
            return target.remove_catalog_arm(args["arm"])
        if self.kind == "set_objective":
            target.set_objective(args["scope"], Objective(**args["objective"]))
            return target.objectives()[args["scope"]]
        if self.kind == "put_budget":
            budget = Budget(**{**args, "alert_thresholds": tuple(args["alert_thresholds"])})
            target.set_budget(budget)
            return target.budget_status(budget.id)
        if self.kind == "delete_budget":
            target.remove_budget(args["id"])
            return True
        raise ValueError(f"unknown operator change {self.kind!r}")

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"kind": self.kind, "args": self.args}
        if self.seq is not None:
            body["seq"] = self.seq
        return json.dumps(body).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> OperatorChange:
        """The change ``raw`` holds; ValueError, KeyError or TypeError for one it does not."""
        body = json.loads(raw)
        seq = body.get("seq")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
            raise TypeError(f"an operator change's seq is an integer, not {seq!r:.40}")
        return cls(body["kind"], dict(body["args"]), seq)


def settle(engine: OptimizerEngine, change: OperatorChange) -> bool:
    """Apply a change recorded earlier (replayed from the internal topic or taken from the
    ledger) to ``engine``, unless the engine has applied one of the same setting numbered as
    high or higher; whether it applied it. A change without a number (written by a version
    before the ledger) is applied as it comes.

    The engine may not hold what the change removes (it was made in the other kind of
    learning): deleting a budget it does not have is nothing, and a withdrawn arm is withdrawn
    whether it was in its catalog or not.
    """
    if change.seq is not None and engine.operator_seq.get(change.key, 0) >= change.seq:
        return False
    if change.kind == "withdraw_arm":
        engine.withdraw_arm(change.args["arm"])
    elif change.kind != "delete_budget" or engine.has_budget(change.args["id"]):
        change.apply(engine)
    if change.seq is not None:
        engine.operator_seq[change.key] = change.seq
    return True


def reconcile(engine: OptimizerEngine, latest: Iterable[OperatorChange]) -> int:
    """Settle every change of ``latest`` (the ledger's, each setting's newest) in the order
    they were numbered; how many the engine had not applied yet."""
    numbered = sorted((c for c in latest if c.seq is not None), key=lambda c: c.seq or 0)
    return sum(settle(engine, change) for change in numbered)


async def take_from_ledger(
    engine: OptimizerEngine, ledger: SettingsLedger | None, **context: Any
) -> int:
    """:func:`reconcile` ``engine`` with the ledger's latest changes (none without a ledger)
    and log how many it took, with ``context`` (the partition, say); that number."""
    if ledger is None:
        return 0
    taken = reconcile(engine, await ledger.latest())
    if taken:
        log.info(
            "operator changes taken from the settings ledger", extra={**context, "taken": taken}
        )
    return taken


class SettingsLedger(Protocol):
    """The latest change of every operator setting, in one place both kinds of learning read
    and write (PostgreSQL's ``optimizer_settings``; in-memory in unit tests)."""

    async def record(self, change: OperatorChange) -> int:
        """Record ``change`` durably as its setting's latest (unless a change of that setting
        numbered higher is there already) and return its number, higher than any number
        returned before."""
        ...

    async def latest(self) -> list[OperatorChange]:
        """Each setting's latest change, numbered."""
        ...


class ChangeTarget(Protocol):
    """Where changes go: it applies a change, makes it durable, and answers for it."""

    def configured(self) -> Configurable:
        """What the changes are applied to, as this process sees it now."""
        ...

    async def apply(self, change: OperatorChange) -> Any:
        """Apply ``change`` durably; returns what :meth:`OperatorChange.apply` returned."""
        ...


class OperatorCommands:
    """Every operator change; each returns once it is durable."""

    def __init__(self, target: ChangeTarget) -> None:
        self._target = target

    async def offer_arm(self, spec: ArmSpec) -> ArmSpec:
        """Offer ``spec`` to every task (again, if it was withdrawn)."""
        await self._target.apply(OperatorChange.offer_arm(spec))
        return spec

    async def withdraw_arm(self, arm: str) -> bool:
        """Withdraw a catalog arm; False (and nothing saved) when it is not in the catalog."""
        if arm not in self._target.configured().catalog:
            return False
        return bool(await self._target.apply(OperatorChange.withdraw_arm(arm)))

    async def set_objective(self, scope: str, objective: Objective) -> dict[str, Any]:
        """Set the objective of ``scope``; the objective as the engine now holds it."""
        return dict(await self._target.apply(OperatorChange.set_objective(scope, objective)))

    async def put_budget(self, budget: Budget) -> dict[str, Any]:
        """Create or replace ``budget``; its status right after the change."""
        return dict(await self._target.apply(OperatorChange.put_budget(budget)))

    async def delete_budget(self, budget_id: str) -> bool:
        """Delete a budget; False (and nothing saved) when there is none with that id."""
        if not self._target.configured().has_budget(budget_id):
            return False
        await self._target.apply(OperatorChange.delete_budget(budget_id))
        return True
