"""The :class:`RoutingPolicy` facade: registers arms and objectives, recommends, learns.

The method lives in the modules it delegates to (see the package docstring for the map).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ..arms import ArmStats
from ..features import COST_FEATURE
from ..residual_quality import ResidualQualityModel
from . import persistence
from .choosing import choose, draw
from .config import Objective, PolicyConfig, objective_for
from .costs import CostBook
from .decision import Decision, alternatives, reason_for
from .estimates import Estimates, estimate_arms
from .keys import family_of
from .learning import (
    DriftSignal,
    clipped_quality,
    drift_event,
    learn_cost,
    learn_latency,
    learn_quality,
    on_quality_drift,
    quality_drift_scale,
)
from .persistence import enc_inf
from .planner import (
    FleetPlan,
    FleetPrice,
    PlannedRequest,
    PlanShare,
    PlanWindow,
    plan_fleet_price,
)
from .priors import PriorTable
from .task import TaskState

__all__ = ["RoutingPolicy"]


class _Rng(Protocol):
    def random(self) -> float: ...


class RoutingPolicy:
    """Contextual, budgeted-exploration, drift-aware routing policy.

    Parameters
    ----------
    config
        :class:`PolicyConfig`.
    arms
        Arms per task type: ``{"mmlu/anatomy": ["gpt-4|openai|default", ...]}``.
    default_arms
        Arms for task types not listed in ``arms`` (created on first sight).
    objectives
        :class:`Objective` per scope; a scope is a task type, a task family or ``"*"``.

    Examples
    --------
    A cheap arm that is as good as the expensive one takes over the traffic:

    >>> import random
    >>> from finops.optimizer.domain.policy import Objective, RoutingPolicy
    >>> policy = RoutingPolicy(
    ...     default_arms=["big|p|c", "small|p|c"],
    ...     objectives={"*": Objective(relative_quality_floor=0.95)},
    ... )
    >>> rng = random.Random(0)
    >>> truth = {"big|p|c": (0.90, 1e-2), "small|p|c": (0.89, 1e-4)}
    >>> for _ in range(600):
    ...     d = policy.recommend("qa", None, rng)
    ...     p, cost = truth[d.arm]
    ...     _ = policy.update("qa", d.arm, None, float(rng.random() < p), cost, 100.0)
    >>> d = policy.recommend("qa", None, rng)
    >>> d.arm, d.propensity > 0.9
    ('small|p|c', True)
    >>> clone = RoutingPolicy.from_state(policy.to_state())
    >>> a = clone.recommend("qa", None, random.Random(1))
    >>> a == policy.recommend("qa", None, random.Random(1))
    True
    """

    def __init__(
        self,
        config: PolicyConfig | None = None,
        arms: Mapping[str, Sequence[str]] | None = None,
        default_arms: Sequence[str] = (),
        objectives: Mapping[str, Objective] | None = None,
    ) -> None:
        self.config = config or PolicyConfig()
        self.default_arms: list[str] = list(default_arms)
        self.objectives: dict[str, Objective] = dict(objectives or {})
        self._tasks: dict[str, TaskState] = {}
        self._priors = PriorTable()
        self._costs = CostBook()
        self._ctx: dict[str, ResidualQualityModel] = {}  # scoped_key(ctx_prefix, arm) -> model
        self._drift_events: deque[dict[str, Any]] = deque(maxlen=self.config.drift_queue_max)
        self._window = PlanWindow(self.config.plan_window)
        self._n_updates = 0
        self._since_replan = 0
        self._plan = FleetPlan()
        self._rng = random.Random(self.config.seed)
        self._drift_params = {
            "delta": self.config.drift_delta,
            "threshold": self.config.drift_threshold,
            "warmup": self.config.drift_warmup,
            "forgetting": self.config.drift_forgetting,
        }
        for task_type, task_arms in (arms or {}).items():
            self.register_arms(task_type, task_arms)

    @property
    def mu(self) -> float:
        """Fleet shadow price of quality (quality per USD; +inf when the target has slack)."""
        return self._plan.mu

    # ------------------------------------------------------------------ configuration
    def register_arms(
        self, task_type: str, arms: Iterable[str], cost_hints: Mapping[str, float] | None = None
    ) -> None:
        """Add arms to a task type (existing statistics are kept)."""
        task = self._task(task_type, create_default=False)
        for arm in arms:
            if arm not in task.arms:
                task.arms[arm] = self._new_arm_stats(task.family, arm)
        for arm, c in (cost_hints or {}).items():
            self._costs.hints[arm] = float(c)

    def set_objective(self, scope: str, objective: Objective) -> None:
        """Set the objective of a task type, a task family or ``"*"`` (default)."""
        self.objectives[scope] = objective

    def objective_for(self, task_type: str) -> Objective:
        return objective_for(self.objectives, task_type)

    def _task(self, task_type: str, create_default: bool = True) -> TaskState:
        task = self._tasks.get(task_type)
        if task is None:
            fam = family_of(task_type)
            task = TaskState(fam, fam if self.config.ctx_scope == "family" else task_type)
            self._tasks[task_type] = task
            if create_default:
                for arm in self.default_arms:
                    task.arms[arm] = self._new_arm_stats(task.family, arm)
        return task

    def _new_arm_stats(self, family: str, arm: str) -> ArmStats:
        st = ArmStats(
            latency_window=self.config.latency_window,
            drift_params=self._drift_params,
            latency_running_scale=self.config.latency_drift_running_scale,
            cost_ranks=self.config.cost_drift_ranks,
        )
        st.prior = self._priors.prior_for(family, arm, self.config.default_prior_strength)
        return st

    def _estimate(
        self, task: TaskState, arm_keys: Sequence[str], features: Mapping[str, float] | None
    ) -> Estimates:
        return estimate_arms(self.config, task, arm_keys, features, self._ctx, self._costs)

    # ------------------------------------------------------------------ recommend
    def recommend(
        self,
        task_type: str,
        features: Mapping[str, float] | None = None,
        rng: _Rng | None = None,
        candidates: Sequence[str] | None = None,
    ) -> Decision:
        """Choose an arm for one request.

        Parameters
        ----------
        task_type
            Task type of the request (its family is the part before ``/``).
        features
            Optional request features (see :func:`.features.prompt_features`); ``input_tokens``
            refines the cost estimate, the others feed the contextual quality models.
        rng
            Any object with ``random() -> float`` (``random.Random``, ``numpy.random.Generator``);
            defaults to the policy's internal seeded RNG.
        candidates
            Restrict the choice to these arms (unknown ones are registered).

        Returns
        -------
        Decision
            The chosen arm, the probability with which it was chosen, its expected quality, cost
            and latency, every arm's estimates and choice probability, and a reason.
        """
        task = self._task(task_type)
        arm_keys = self._candidate_arms(task, task_type, candidates)
        obj = self.objective_for(task_type)
        est = self._estimate(task, arm_keys, features)
        chosen_by = choose(self.config, self._plan, task, arm_keys, obj, est)
        choice = chosen_by.choice
        chosen = draw(choice.probs, (rng or self._rng).random())
        explored = chosen not in chosen_by.greedy
        # expected quality given up by exploring (the planner compensates for it)
        x_loss = chosen_by.q_greedy
        for p, q in zip(choice.probs, est.quality, strict=True):
            x_loss -= p * q
        self._plan.record_exploration_loss(x_loss, self.config.plan_window)
        task.picks += 1
        if explored:
            task.explores += 1
        greedy_arm = arm_keys[choice.greedy]
        exploration = choice.mechanisms[chosen] if explored else None
        reason = reason_for(obj, chosen_by.prices, choice, chosen, exploration, greedy_arm)
        return Decision(
            arm=arm_keys[chosen],
            propensity=choice.probs[chosen],
            expected_quality=est.quality[chosen],
            expected_cost_usd=est.cost[chosen],
            expected_latency_ms=task.arms[arm_keys[chosen]].latency.mean(),
            alternatives=alternatives(arm_keys, est, choice),
            reason=reason,
            task_type=task_type,
            explored=explored,
            exploration=exploration,
        )

    def _candidate_arms(
        self, task: TaskState, task_type: str, candidates: Sequence[str] | None
    ) -> list[str]:
        if candidates is not None:
            for a in candidates:
                if a not in task.arms:
                    task.arms[a] = self._new_arm_stats(task.family, a)
            arm_keys = list(candidates)
        else:
            arm_keys = list(task.arms)
        if not arm_keys:
            raise ValueError(f"no arms registered for task type {task_type!r}")
        return arm_keys

    # ------------------------------------------------------------------ learn
    def update(
        self,
        task_type: str,
        arm: str,
        features: Mapping[str, float] | None,
        quality: float | None,
        cost_usd: float | None,
        latency_ms: float | None = None,
        success: bool = True,
    ) -> list[dict[str, Any]]:
        """Learn from the outcome of the arm that served a request (bandit feedback).

        ``cost_usd`` teaches the cost model, linear in the features' ``input_tokens`` (the
        request's, as it was decided on and as a recommendation is asked for); ``None``
        leaves it out (the engine does so for a call whose cost is another request's: see
        :func:`~finops.optimizer.domain.event_inputs.learned_cost`).

        Returns the drift events raised by this update (they are also queued for
        :meth:`drain_drift_events`).
        """
        cfg = self.config
        task = self._task(task_type)
        st = task.arms.get(arm)
        if st is None:
            st = task.arms[arm] = self._new_arm_stats(task.family, arm)
        q = clipped_quality(quality, success)
        tokens = features.get(COST_FEATURE) if features else None
        signals: list[DriftSignal | None] = []
        q_before = st.mean_quality()
        learn_quality(cfg, task, st, features, q, q_before, self._ctx)
        if st.q_drift.update(q, quality_drift_scale(cfg, q_before)):
            on_quality_drift(cfg, task, st)
            signals.append(
                DriftSignal("quality", st.q_drift.last_direction, q_before, st.mean_quality())
            )
        if cost_usd is not None:
            weight = cfg.cost_drift_level_weight
            signals.append(learn_cost(self._costs, arm, st, tokens, float(cost_usd), weight))
        if latency_ms is not None:
            signals.append(learn_latency(cfg, st, latency_ms))
        events = [drift_event(task_type, arm, s, self._n_updates) for s in signals if s is not None]
        self._account(task_type, task, features, q)
        if events:
            self._drift_events.extend(events)
        return events

    def _account(
        self, task_type: str, task: TaskState, features: Mapping[str, float] | None, q: float
    ) -> None:
        """Fleet accounting, the planning window, and a re-plan when one is due."""
        task.n += 1
        task.q_sum += q
        self._n_updates += 1
        self._window.add(PlannedRequest(task_type, dict(features) if features else None))
        self._since_replan += 1
        if self._since_replan >= min(self.config.replan_every, max(8, self._n_updates // 2)):
            self.replan()

    def drain_drift_events(self) -> list[dict[str, Any]]:
        """Return and clear the queued drift events, oldest first (at most the newest
        ``drift_queue_max`` since the last drain)."""
        out = list(self._drift_events)
        self._drift_events.clear()
        return out

    def replan(self) -> None:
        """Re-estimate priors and the fleet shadow price (called automatically by ``update``)."""
        self._since_replan = 0
        for model in self._ctx.values():
            if model.needs_refit:
                model.optimise_prior()
        self._priors.estimate(self.config, self._tasks)
        if self.config.fleet_quality_target is None:
            return
        self._plan.install(plan_fleet_price(self.config, [self.plan_share()]), self._tasks)

    def plan_share(self) -> PlanShare:
        """What this policy brings to a fleet plan (:func:`.planner.plan_fleet_price`)."""
        rate = self._plan.exploration_rate()
        # copies taken at once (the same statistics): a replica's view plans on a thread
        # while its API may add a task type or an arm
        tasks = {t: task.arms_copied() for t, task in list(self._tasks.items())}
        return PlanShare(
            tasks, self._window, self._estimate, self.objective_for, rate, self._n_updates
        )

    def install_price(self, price: FleetPrice | None) -> None:
        """Serve with a price planned over several policies (its audits set here on the task
        types it planned); ``status()["updates"]`` stays this policy's own count."""
        if price is not None:
            price = replace(price, info={**price.info, "updates": self._n_updates})
        self._plan.install(price, self._tasks)

    # ------------------------------------------------------------------ introspection
    def status(self) -> dict[str, Any]:
        """Fleet-level planning status (shadow price, estimated quality ratio, ...).

        JSON-safe: an unbounded shadow price (the quality target has slack) is reported as
        ``None``.
        """
        out = {
            "updates": self._n_updates,
            "mu": self._plan.mu,
            "tasks": len(self._tasks),
            **self._plan.info,
        }
        return {k: enc_inf(v) for k, v in out.items()}

    def arm_summary(self, task_type: str) -> dict[str, dict[str, Any]]:
        """Per-arm estimates of a task type (no features)."""
        task = self._tasks.get(task_type)
        if task is None:
            return {}
        keys = list(task.arms)
        est = self._estimate(task, keys, None)
        return {
            a: {
                "quality": est.quality[i],
                "quality_sd": math.sqrt(est.variance[i]),
                "cost_usd": est.cost[i],
                "p95_latency_ms": est.latency[i],
                "observations": task.arms[a].quality.n,
                "drifts": task.arms[a].n_drifts,
            }
            for i, a in enumerate(keys)
        }

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot of the whole policy (format: :mod:`.persistence`)."""
        return persistence.dump(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RoutingPolicy:
        """Rebuild a policy from :meth:`to_state` output (e.g. after a JSON round trip)."""
        return persistence.load(cls, state)
