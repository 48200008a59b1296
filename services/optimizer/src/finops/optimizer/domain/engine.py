"""The optimizer's whole learned state and the rules that change it. Pure: no I/O.

:class:`OptimizerEngine` takes cost and error events one at a time (spend analytics, budgets,
anomalies, the routing policy all learn from the same event), answers recommendation
requests, and turns what it notices (drift, budget thresholds, spend spikes) into alerts.
Its state is plain data, so the service can checkpoint it together with the offsets of the
events it has taken in.

Its parts: the errors (:mod:`.errors`), a recommendation and the steps that narrow its
candidates (:mod:`.recommendation`), what it reads from an event (:mod:`.event_inputs`), the
drift alert (:mod:`.drift_alerts`) and the checkpoint format (:mod:`.engine_state`).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Literal

from finops.common.events import ErrorEvent, Event, LlmCallEvent, Usage, price_call
from finops.optimizer.domain import engine_state
from finops.optimizer.domain.analytics import IdDedupe, SpendAnalytics, fingerprint
from finops.optimizer.domain.anomaly import SpendAnomalyDetector
from finops.optimizer.domain.arm_identity import ArmSpec
from finops.optimizer.domain.budgets import Budget, BudgetTracker
from finops.optimizer.domain.circuits import BreakerStates, SkippedArm
from finops.optimizer.domain.drift_alerts import drift_alert
from finops.optimizer.domain.engine_state import STATE_VERSION
from finops.optimizer.domain.error_outcomes import says_about_quality
from finops.optimizer.domain.errors import NoArms, OptimizerError, UnknownBudget
from finops.optimizer.domain.event_inputs import (
    arm_spec,
    call_features,
    config_dict,
    learned_cost,
)
from finops.optimizer.domain.eventtime import windowable
from finops.optimizer.domain.features import COST_FEATURE
from finops.optimizer.domain.policy import Objective, PolicyConfig, RoutingPolicy, family_of
from finops.optimizer.domain.promotion import drift_note, lift_on_drift
from finops.optimizer.domain.recommendation import (
    Recommendation,
    affordable,
    narrowed_by_promotion,
    screened,
)

__all__ = [
    "STATE_VERSION",
    "Adoption",
    "ArmSpec",
    "NoArms",
    "OptimizerEngine",
    "OptimizerError",
    "Recommendation",
    "UnknownBudget",
]

#: what adopting an experiment's announcement did (its outcome on the events counter)
Adoption = Literal["promoted", "repeated", "no_winner"]


class OptimizerEngine:
    """Analytics, routing policy, budgets and anomaly detection fed by one event stream.

    Parameters
    ----------
    fleet_quality_target
        Overall quality to keep relative to the best single arm (``None``: per-task objectives
        only, default "cheapest arm within 95% of the best").
    seed
        Seed of the policy's internal random generator.
    """

    def __init__(self, fleet_quality_target: float | None = None, seed: int = 0) -> None:
        self.analytics = SpendAnalytics()
        self.policy = RoutingPolicy(
            PolicyConfig(fleet_quality_target=fleet_quality_target, seed=seed),
            objectives={"*": Objective(relative_quality_floor=0.95)},
        )
        self.budgets = BudgetTracker()
        self.anomalies = SpendAnomalyDetector()
        self.error_ids = IdDedupe(200_000)
        self.arms: dict[str, ArmSpec] = {}
        self.catalog: dict[str, ArmSpec] = {}
        #: arms the operator deleted from the catalog: never recommended until offered again,
        #: even where agents keep reporting calls with them (those still count and teach)
        self.withdrawn: set[str] = set()
        self.task_arms: dict[str, list[str]] = {}
        self.errors_seen = 0
        #: error events in a record taken already, read again and dropped (never
        #: checkpointed: only the ``redelivered`` outcome of ``finops_optimizer_events_total``)
        self.errors_redelivered = 0
        self.drift_alerts = 0
        #: winners of experiments (finops.experiments.v1), by task type: the arm recommended
        #: there before the policy is asked, and the arms it beat (never recommended there);
        #: apart, those a drift for the worse lifted (:mod:`.promotion`)
        self.promoted: dict[str, dict[str, Any]] = {}
        self.promotions_lifted: dict[str, dict[str, Any]] = {}
        #: the number of the latest operator change applied per setting (``arm:<arm>``,
        #: ``objective:<scope>``, ``budget:<id>``): an older one arriving later is not applied
        #: (``finops.optimizer.service_layer.commands.settle``)
        self.operator_seq: dict[str, int] = {}

    # ---- learning ----------------------------------------------------------------------

    def observe(
        self, event: LlmCallEvent, source: tuple[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """Take one ``agent.llm_call`` in; return the alerts it raised. Idempotent on its id
        (``source``: where its record was read, see :meth:`.SpendAnalytics.observe`)."""
        if not self.analytics.observe(event, source):
            return []
        data = event.data
        spec = ArmSpec(data.model, data.provider, config_dict(data.config))
        arm = self._know_arm(data.task_type, spec)
        features = call_features(data.features, data.usage)
        self.policy.update(
            data.task_type,
            arm,
            features,
            data.quality,
            learned_cost(data),
            data.latency_ms,
            data.success,
        )
        alerts = self._drift_alerts(str(event.id))
        if windowable(event.time.timestamp()):
            # beyond years 1-9999 UTC an event counts in the all-time totals only (the
            # analytics count it as out of range): no period or window could hold it
            alerts += [a.to_dict() for a in self.budgets.observe(event)]
            alerts += [a.to_dict() for a in self.anomalies.observe(event)]
        return alerts

    def observe_error(
        self, event: ErrorEvent, source: tuple[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """A failed call counts as a quality-0 outcome of its arm (:func:`.says_about_quality`),
        unless it is the provider's passing unavailability (a rate limit, an overload, a server
        error, a timeout, the network): that only makes the arm known, and the breakers route
        around the provider.
        Idempotent on its id; ``source`` tells a record read again (:attr:`errors_redelivered`)
        from an error sent again, with the same records taken as calls
        (:meth:`.SpendAnalytics.read_again`)."""
        fp = fingerprint(event.id)
        new = self.error_ids.add(fp)
        if self.analytics.read_again(source, fp, new):
            self.errors_redelivered += 1
            return []
        if not new:
            return []
        self.errors_seen += 1
        data = event.data
        known = [
            a
            for a in self.task_arms.get(data.task_type, [])
            if self.arms[a].arm.serves(data.model, data.provider)
        ]
        arm = (
            known[-1]
            if known
            else self._know_arm(data.task_type, ArmSpec(data.model, data.provider))
        )
        if not says_about_quality(data.error, data.provider):
            return []
        tokens = data.request.input_tokens if data.request else None
        features = {COST_FEATURE: float(tokens)} if tokens is not None else None
        self.policy.update(data.task_type, arm, features, None, None, None, False)
        return self._drift_alerts(str(event.id))

    @property
    def counted(self) -> int:
        """Events counted once: the calls the analytics counted and the errors taken in, learned
        as quality or not (a duplicate id adds to neither)."""
        return self.analytics.events + self.errors_seen

    @property
    def tally(self) -> tuple[int, int]:
        """:attr:`counted` and the events read again and dropped (the calls' ``redelivered``
        and :attr:`errors_redelivered`): what :func:`~finops.optimizer.adapters.stream.taken`
        compares before and after an event."""
        return self.counted, self.analytics.redelivered + self.errors_redelivered

    def take(self, event: Event, source: tuple[str, int] | None = None) -> list[dict[str, Any]]:
        """One decoded event of either type (:meth:`observe`, :meth:`observe_error`); the
        alerts it raised. ``source``: where its record was read (``("topic:partition",
        offset)`` of the topic the agents' events were written to), which tells a record read
        again from an event sent again (:meth:`.SpendAnalytics.observe`)."""
        if isinstance(event, LlmCallEvent):
            return self.observe(event, source)
        if isinstance(event, ErrorEvent):
            return self.observe_error(event, source)
        return []

    def _drift_alerts(self, cause: str) -> list[dict[str, Any]]:
        """The policy's drift events as alerts, drained right after the update of the event
        ``cause`` (its id) that raised them: reported once, never checkpointed."""
        alerts = []
        for event in self.policy.drain_drift_events():
            self.drift_alerts += 1
            pinned = self.promoted.get(str(event.get("task_type")))
            lifted = lift_on_drift(self.promoted, self.promotions_lifted, event)
            note = drift_note(lifted or pinned, lifted is not None)
            alert = drift_alert(event, cause, note)
            if lifted is not None:
                alert["details"]["unpinned_experiment_id"] = lifted.get("experiment_id")
            alerts.append(alert)
        return alerts

    def _know_arm(self, task_type: str, spec: ArmSpec) -> str:
        arm = spec.arm_id
        self.arms.setdefault(arm, spec)
        arms = self.task_arms.setdefault(task_type, [])
        if arm not in arms:
            arms.append(arm)
            self.policy.register_arms(task_type, [arm], self._cost_hints([arm]))
        return arm

    def _cost_hints(self, arms: list[str]) -> dict[str, float]:
        """Price per 1k input + 250 output tokens from genai-prices, for arms not yet seen."""
        hints = {}
        for arm in arms:
            spec = self.arms.get(arm) or self.catalog.get(arm)
            if spec is None:
                continue
            priced = price_call(
                spec.provider, spec.model, Usage(input_tokens=1000, output_tokens=250)
            )
            if priced.total_usd is not None:
                hints[arm] = priced.total_usd
        return hints

    def adopt_decision(self, decision: Mapping[str, Any]) -> Adoption:
        """Adopt an experiment's winner for its task type: ``promoted``; ``no_winner`` when
        there is none; ``repeated`` when it is the decision of the experiment whose winner the
        task type holds already (the outbox announces at least once), pinned or with its pin
        lifted by a drift (:mod:`.promotion`), which stays lifted."""
        winner = decision.get("winner_arm")
        task_type = decision.get("task_type")
        if decision.get("kind") != "decision" or not winner or not isinstance(task_type, str):
            return "no_winner"
        arm = self._know_arm(task_type, arm_spec(winner))
        losers = [self._know_arm(task_type, arm_spec(loser)) for loser in decision["losers"]]
        held = self.promotions_lifted.get(task_type)
        if held and held.get("experiment_id") == decision.get("experiment_id"):
            return "repeated"  # its pin stays lifted
        pinned = self.promoted.get(task_type)
        again = pinned is not None and pinned.get("experiment_id") == decision.get("experiment_id")
        self.promotions_lifted.pop(task_type, None)  # another experiment's winner: pinned
        self.promoted[task_type] = {
            "arm": arm,
            "losers": [a for a in losers if a != arm],
            "experiment_id": decision.get("experiment_id"),
            "experiment": decision.get("name"),
            "variant": decision.get("winner"),
            "decided_at": decision.get("decided_at"),
        }
        return "repeated" if again else "promoted"

    # ---- answering ---------------------------------------------------------------------

    def candidates(self, task_type: str) -> list[str]:
        """Arms seen for this task, the operator's catalog, or (for a new task) every arm;
        never an arm deleted from the catalog."""
        own = [a for a in self.task_arms.get(task_type, []) if a not in self.withdrawn]
        for arm in self.catalog:
            if arm not in own:
                own.append(arm)
        return own or [a for a in self.arms if a not in self.withdrawn]

    def recommend(
        self,
        task_type: str,
        features: Mapping[str, float] | None = None,
        *,
        agent_id: str | None = None,
        team: str | None = None,
        rng: Any = None,
        now: datetime | None = None,
        breakers: BreakerStates | None = None,
        probe_rate: float = 0.05,
        budgets: BudgetTracker | None = None,
    ) -> Recommendation:
        """The arm for one request. ``breakers`` (the healer's circuit states) leave out the
        arms whose breaker is open, and half-open ones but for ``probe_rate`` of requests;
        ``budgets`` (default: the engine's) pace the spend of the request's agent and team."""
        candidates = self.candidates(task_type)
        if not candidates:
            raise NoArms(f"no model is known for task type {task_type!r} yet")
        for arm in candidates:
            if arm not in self.task_arms.get(task_type, []):
                self._know_arm(task_type, self.arms.get(arm) or self.catalog[arm])
        skipped: list[SkippedArm] = []
        reason_prefix = ""
        if breakers is not None:
            specs = [self.arms.get(a) or self.catalog[a] for a in candidates]
            candidates, skipped, reason_prefix = screened(
                specs, breakers, probe_rate, rng or random
            )
        budgets = budgets or self.budgets
        pacing = budgets.pacing_for(agent_id, team, at=now) if (agent_id or team) else None
        if pacing and pacing.get("action") in ("step_down", "exhausted"):
            summary = self.policy.arm_summary(task_type)
            candidates, reason = affordable(summary, candidates, pacing)
            reason_prefix += reason
        candidates, reason = narrowed_by_promotion(self.promoted.get(task_type), candidates)
        reason_prefix += reason
        decision = self.policy.recommend(task_type, features, rng, candidates=candidates)
        spec = self.arms.get(decision.arm) or self.catalog[decision.arm]
        return Recommendation(
            recommendation_id=str(uuid.uuid4()),
            task_type=task_type,
            arm=spec,
            expected={
                "quality": decision.expected_quality,
                "cost_usd": decision.expected_cost_usd,
                "latency_ms": decision.expected_latency_ms,
            },
            propensity=decision.propensity,
            policy_version=self.policy_version,
            alternatives=[dict(a) for a in decision.alternatives],
            reason=reason_prefix + decision.reason,
            explored=decision.explored,
            exploration=None if decision.exploration is None else str(decision.exploration),
            time=(now or datetime.now(UTC)).isoformat(),
            skipped=tuple(skipped),
        )

    def request_rng(self, task_type: str, seed: int) -> random.Random:
        """The random generator of one request, from the policy's seed, the task type and the
        request's own seed: the same request against the same learned state gets the same
        answer, whatever other requests drew in between (reproducible runs, e.g. the demo)."""
        key = f"{self.policy.config.seed}|{task_type}|{seed}".encode()
        return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest()))

    @property
    def policy_version(self) -> str:
        return f"routing-v{STATE_VERSION}.{self.policy.status()['updates']}"

    # ---- operator settings -------------------------------------------------------------

    def add_catalog_arm(self, spec: ArmSpec) -> str:
        self.catalog[spec.arm_id] = spec
        self.withdrawn.discard(spec.arm_id)
        for task_type in self.task_arms:
            self._know_arm(task_type, spec)
        return spec.arm_id

    def remove_catalog_arm(self, arm: str) -> bool:
        """Stop offering a catalog arm to any task; False when it is not in the catalog."""
        if self.catalog.pop(arm, None) is None:
            return False
        self.withdrawn.add(arm)
        return True

    def withdraw_arm(self, arm: str) -> None:
        """Withdraw ``arm`` whether or not it is in the catalog (a withdrawal made while
        another engine had it there)."""
        self.catalog.pop(arm, None)
        self.withdrawn.add(arm)

    def set_objective(self, scope: str, objective: Objective) -> None:
        self.policy.set_objective(scope, objective)

    def objectives(self) -> dict[str, dict[str, Any]]:
        return {k: asdict(v) for k, v in self.policy.objectives.items()}

    def set_budget(self, budget: Budget) -> None:
        self.budgets.set_budget(budget)

    def remove_budget(self, budget_id: str) -> None:
        if self.budgets.get(budget_id) is None:
            raise UnknownBudget(f"no budget {budget_id!r}")
        self.budgets.remove_budget(budget_id)

    def has_budget(self, budget_id: str) -> bool:
        return self.budgets.get(budget_id) is not None

    def budget_status(self, budget_id: str) -> dict[str, Any]:
        return self.budgets.status(budget_id)

    def tasks(self) -> dict[str, Any]:
        return {
            task: {"family": family_of(task), "arms": self.policy.arm_summary(task)}
            for task in sorted(self.task_arms)
        }

    # ---- state -------------------------------------------------------------------------

    def state_parts(
        self, resume_at: Mapping[str, int] | None = None
    ) -> list[tuple[str, Callable[[], Any]]]:
        """The state as named parts, so a caller can serialise it a piece at a time
        (``resume_at``: see :func:`.engine_state.state_parts`)."""
        return engine_state.state_parts(self, resume_at)

    def view_parts(self) -> list[tuple[str, Callable[[], Any]]]:
        """:meth:`state_parts` without the memories of event ids: what a replica needs to
        answer queries and recommendations (a view restored from it must not be fed events)."""
        return engine_state.view_parts(self)

    def policy_status(self) -> dict[str, Any]:
        """Fleet-level planning status of the routing policy (shadow price, updates, ...)."""
        return self.policy.status()

    def to_state(self) -> dict[str, Any]:
        return {name: build() for name, build in self.state_parts()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OptimizerEngine:
        engine = cls.__new__(cls)
        engine_state.restore(engine, state)
        return engine
