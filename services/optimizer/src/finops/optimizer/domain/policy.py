"""Online cost/quality routing policy (one implementation for the live service and the backtest).

Model
-----
For every task type the policy routes a request to one *arm* (``"model|provider|config"``).  For
each ``(task_type, arm)`` it keeps (see :mod:`.arms`)

* a quality posterior (Normal approximation of a Beta) with an empirical-Bayes prior: the arm's
  typical quality over the task *family* (``mmlu/anatomy`` belongs to ``mmlu``) shifted by the
  task's difficulty as seen by the *other* arms (a task that is hard for the cheap model is hard
  for the expensive one too),
* an expected-cost model (linear in the request's input tokens, slope pooled per arm),
* a latency window (mean and p95),
* Page-Hinkley drift monitors on quality, log-latency and log-cost residuals.

With request features (:func:`.features.prompt_features`) a
:class:`.features.ResidualQualityModel` per ``(family, arm)`` -- river StandardScaler + Bayesian
linear regression with evidence-optimised prior, on features centred per task type -- predicts
how this prompt deviates from the arm's task-level mean.  Its predictions are centred per task
(they rank prompts *within* a task) and scaled by a prequentially measured calibration slope, so
``q_hat(x, a) = mean(task, a) + lam_a * (r_a(x) - rbar(task, a))``.

Decision rule
-------------
Among the arms meeting the operator's constraints for the scope (absolute or relative quality
floor, p95 latency ceiling) the *greedy* arm maximises::

    q_hat(x, a) - latency_weight * p95_a - price * cost_hat(x, a)

``price`` is, by objective: the operator's willingness to pay (quality per USD); ``+inf`` for
"cheapest arm meeting the floor"; ``0`` for "best quality"; or, with a fleet-wide quality
target, the learned *shadow price* ``mu`` of quality.

Exploration has exact propensities (needed for IPS / doubly-robust evaluation): every other arm
gets the Thompson probability ``P(u_a > u_greedy)`` under the Gaussian posteriors (times the
probability of meeting the floor), capped so that the expected *waste* (quality given up plus
extra cost at the price) stays below ``explore_regret_rate`` per request and by a per-task budget
of exploratory picks; arms whose evidence on a task is thin get a fair trial (the task's trial
traffic is shared by its arms, so it does not grow with their number) and are exempt from the
waste cap -- but only while they are *plausible*: likely enough (``explore_floor``) to beat the
greedy arm, or to be the best arm that quality targets are measured against.  With ten arms, trying
each one on every task type would cost more quality than a 5% target leaves.  Arms that may be
materially better than the apparent best get sampled (targets are relative to the best arm); a
small floor keeps every propensity positive.

Priors pooled from a handful of identical outcomes are smoothed by ``default_prior_strength``
pseudo-observations, so that one wrong answer does not make an arm "certainly useless" everywhere.

Fleet-wide quality target (shadow price)
----------------------------------------
With ``fleet_quality_target = T`` the realised quality of all routed requests must stay at
``>= T x`` the quality the best single arm (highest estimated total over all task types) would
have delivered on the same requests.  Every ``replan_every`` updates the policy re-plans ``mu``:

1. *Reference.*  For each arm the counterfactual total is the quality it delivered where it
   served plus, on requests it did not serve, its task mean (raised by ``ref_optimism`` posterior
   sds: adaptively sampled means are biased low) plus the calibrated residuals of those prompts.
   The aim is ``T`` times the largest *upper confidence bound* of these totals over the best
   one's estimate: the ratio must hold against every arm that may plausibly be the best.
   *Reference audits* keep that estimate honest where the policy has moved away from the
   reference arm: one more observation of it on a task type lowers the quality the fleet must
   deliver by ``T z dV / (2 sd)`` (``dV`` the variance it removes from the total); where that is
   worth more than the extra cost at the shadow price, the reference arm is sampled.  The
   decision ignores its estimate on the task, or sampling would stop where it looks worse and
   leave that estimate biased low.
2. *Pacing.*  The realised policy quality is known exactly; the surplus / deficit against the
   aim is spread over a horizon of ``pacing_horizon`` x the traffic seen so far, and the
   expected loss of exploratory picks is added.
3. *Dual solve.*  On a window of recent requests (task types and features: a sample of future
   traffic) every request's arms form a cost/quality hull; the breakpoints
   ``delta quality / delta cost`` are sorted and ``mu`` is set where the cumulative quality loss
   reaches the budget -- the exact Lagrangian relaxation of "minimise cost s.t. fleet quality >=
   target", spending the quality loss where the cost saved per unit of quality is largest, across
   task types and prompts.  Requests at the marginal breakpoint are split by randomised rounding
   (``mu`` / ``mu_hi`` with probability ``mu_mix``); when the target is slack ``mu = inf``.

``mu`` is in quality per USD and chosen by a sort: nothing depends on the cost scale or on the
number of arms, and there is no learning rate.

Drift
-----
On a detected change of an arm's quality its posterior is shrunk to a few pseudo-observations
centred on the recent (exponentially weighted) mean, its prior strength is capped, the task gets
an exploration boost and a drift event is returned by :meth:`RoutingPolicy.update` and queued
for :meth:`RoutingPolicy.drain_drift_events` (the newest ``drift_queue_max`` only: a caller that
never drains must not grow the state without bound). Latency / cost drifts reset the latency
window / cost statistics and are reported the same way.

The whole state is plain data: :meth:`RoutingPolicy.to_state` returns a JSON-able dict and
:meth:`RoutingPolicy.from_state` restores a policy that makes identical decisions.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from .arms import ArmStats, CostModel
from .features import COST_FEATURE, ResidualQualityModel

__all__ = ["Decision", "Objective", "PolicyConfig", "RoutingPolicy", "family_of"]

_SQRT2 = math.sqrt(2.0)
_INF = float("inf")


class _Rng(Protocol):
    def random(self) -> float: ...


def family_of(task_type: str) -> str:
    """Task family of a task type: the part before the first ``/`` (``mmlu/x`` -> ``mmlu``)."""
    i = task_type.find("/")
    return task_type if i < 0 else task_type[:i]


def _enc_inf(x: Any) -> Any:
    """JSON has no infinity: +inf (an unbounded shadow price) is stored as ``None``."""
    return None if isinstance(x, float) and x == _INF else x


def _dec_inf(x: Any) -> float:
    return _INF if x is None else float(x)


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


@dataclass(frozen=True)
class Objective:
    """Operator objective for a task type or task family.

    Parameters
    ----------
    quality_floor
        Absolute minimum expected quality (0..1) an arm must have to be eligible.
    relative_quality_floor
        Minimum expected quality relative to the best arm of the task (e.g. ``0.95``).
    latency_p95_ms
        Ceiling on an arm's estimated p95 latency (arms with too few observations are eligible).
    wtp_per_usd
        Willingness to pay: score ``quality - wtp_per_usd * cost_usd``.  Overrides the fleet
        shadow price for this scope.
    latency_weight_per_s
        Quality units subtracted per second of p95 latency (soft latency preference).

    Without ``wtp_per_usd`` and without a fleet target, an objective with a floor means "cheapest
    eligible arm"; an empty objective means "best expected quality".
    """

    quality_floor: float | None = None
    relative_quality_floor: float | None = None
    latency_p95_ms: float | None = None
    wtp_per_usd: float | None = None
    latency_weight_per_s: float = 0.0


@dataclass
class PolicyConfig:
    """Knobs of :class:`RoutingPolicy`.

    The defaults are the method, not a fit to one data set: only ``fleet_quality_target`` (and
    ``seed``) are meant to be set by callers.  Quality is in [0, 1], prices in quality per USD.
    """

    # --- fleet-wide objective ------------------------------------------------------------
    #: quality to keep relative to the best single arm over all task types (``None``: off)
    fleet_quality_target: float | None = None
    #: confidence (standard errors) with which the target must hold against every arm that may
    #: be the best one
    target_z: float = 1.0
    #: a surplus / deficit is paced out over this fraction of the traffic seen so far
    pacing_horizon: float = 0.25
    #: re-plan the shadow price every this many updates (more often at the start)
    replan_every: int = 200
    #: recent requests used as the planning sample (and minimum pacing horizon)
    plan_window: int = 256
    #: counterfactual reference totals: include the (calibrated) contextual residuals of the
    #: requests an arm did not serve
    ref_residuals: bool = True
    ref_residual_calibrated: bool = True
    #: the reference arm's mean on requests it did not serve is raised by this many posterior
    #: standard deviations: adaptively collected sample means are biased low for arms the
    #: policy stopped sampling (Nie et al., 2018), which would overstate the quality ratio
    ref_optimism: float = 0.2

    # --- exploration (all probabilities are exact propensities) ---------------------------
    #: minimum total probability of the non-greedy arms; also the plausibility bar: an arm whose
    #: chance of beating the greedy one and of being the best arm are both below it is left to
    #: this floor and the regret cap, however thin its evidence
    explore_floor: float = 0.01
    #: max expected waste per request (quality given up + extra cost at the price)
    explore_regret_rate: float = 0.0025
    #: per-task budget: max fraction of exploratory picks (plus ``explore_allowance`` per arm)
    max_explore_frac: float = 0.15
    explore_allowance: int = 20
    #: per-decision cap of the exploration probability
    max_explore_step: float = 0.5
    #: weight of sampling arms that may be materially better than the apparent best
    identify_weight: float = 0.5
    #: fair trial: arms with less evidence (observations + prior pseudo-observations) on a task
    #: than ``explore_min_obs`` are sampled with probability ``young_explore / (arms - 1)``
    #: each, unless they are implausible (see ``explore_floor``)
    explore_min_obs: int = 30
    young_explore: float = 0.2

    # --- quality posteriors (empirical Bayes) ---------------------------------------------
    prior_strength_min: float = 1.0
    prior_strength_max: float = 100.0
    default_prior_strength: float = 2.0
    #: task types with data needed before priors are pooled across a family
    eb_min_tasks: int = 5

    # --- contextual residual models ---------------------------------------------------------
    contextual: bool = True
    #: one model per task "family" (pooled over its task types) or per "task" type
    ctx_scope: str = "family"
    ctx_prior_variance: float = 0.002
    ctx_noise_variance: float = 0.2
    ctx_clip: float = 0.3
    ctx_warmup: int = 30
    #: feature means and residual predictions are centred per task over this many requests
    ctx_center_window: int = 200
    #: pseudo-observations shrinking the prequential calibration slope of the residuals to 0
    ctx_calibration_prior: float = 30.0
    #: also feed the intercept with residual-adjusted qualities (off: proved over-confident
    #: on adaptively selected requests)
    ctx_backfit: bool = False

    # --- drift ----------------------------------------------------------------------------
    #: Page-Hinkley settings (standard-deviation units)
    drift_delta: float = 0.1
    drift_threshold: float = 40.0
    drift_warmup: int = 30
    #: pseudo-observations kept (and max prior strength) after a quality drift
    drift_keep: float = 5.0
    #: weight of the exponentially weighted "recent" quality mean used after a drift
    recent_alpha: float = 0.05
    #: exploration floor right after a drift, for ``drift_explore_events`` updates of the task
    drift_explore_floor: float = 0.2
    drift_explore_events: int = 100
    #: drift events kept for :meth:`RoutingPolicy.drain_drift_events` (the oldest are dropped)
    drift_queue_max: int = 100

    # --- latency / misc ---------------------------------------------------------------------
    latency_window: int = 256
    min_latency_obs: int = 20
    #: seed of the internal RNG (used when ``recommend`` gets no ``rng``)
    seed: int = 0


@dataclass(frozen=True)
class Decision:
    """Routing decision for one request."""

    arm: str
    propensity: float
    expected_quality: float
    expected_cost_usd: float
    expected_latency_ms: float | None
    alternatives: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    reason: str = ""
    task_type: str = ""
    explored: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["alternatives"] = [dict(a) for a in self.alternatives]
        return d


class _Task:
    __slots__ = (
        "arms",
        "audit",
        "boost_until",
        "ctx_prefix",
        "explores",
        "family",
        "feat_mean",
        "feat_n",
        "n",
        "picks",
        "q_sum",
    )

    def __init__(self, family: str, ctx_prefix: str = "") -> None:
        self.family = family
        self.ctx_prefix = ctx_prefix or family  # key prefix of the contextual models
        self.arms: dict[str, ArmStats] = {}
        self.n = 0  # feedback events
        self.q_sum = 0.0  # realised quality of the policy's choices
        self.picks = 0
        self.explores = 0
        self.boost_until = 0
        # value, in fleet quality, of one more observation of the reference arm here
        self.audit = 0.0
        self.feat_mean: dict[str, float] = {}  # running mean of the request features
        self.feat_n = 0

    def centred(self, features: Mapping[str, float]) -> dict[str, float]:
        """Features minus the task's running means (contextual models see within-task variation)."""
        fm = self.feat_mean
        return {k: v - fm.get(k, v) for k, v in features.items()}

    def learn_features(self, features: Mapping[str, float], window: int) -> None:
        self.feat_n += 1
        w = 1.0 / min(self.feat_n, window)
        fm = self.feat_mean
        for k, v in features.items():
            m = fm.get(k)
            fm[k] = v if m is None else m + w * (v - m)

    def to_state(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "ctx_prefix": self.ctx_prefix,
            "arms": {a: st.to_state() for a, st in self.arms.items()},
            "n": self.n,
            "q_sum": self.q_sum,
            "picks": self.picks,
            "explores": self.explores,
            "boost_until": self.boost_until,
            "audit": self.audit,
            "feat_mean": dict(self.feat_mean),
            "feat_n": self.feat_n,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> _Task:
        t = cls(s["family"], s["ctx_prefix"])
        t.arms = {a: ArmStats.from_state(v) for a, v in s["arms"].items()}
        t.n, t.q_sum, t.picks = s["n"], s["q_sum"], s["picks"]
        t.explores, t.boost_until = s["explores"], s["boost_until"]
        t.feat_mean, t.feat_n = dict(s["feat_mean"]), s["feat_n"]
        t.audit = s.get("audit", 0.0)
        return t


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
        self._tasks: dict[str, _Task] = {}
        self._priors: dict[str, tuple[float, float, float]] = {}  # "family\x1farm" -> prior
        self._arm_prior: dict[str, tuple[float, float, float]] = {}  # arm -> global prior
        self._arm_cost: dict[str, list[Any]] = {}  # arm -> [CostModel, pooled cxy, pooled cxx]
        self._cost_hints: dict[str, float] = {}
        self._ctx: dict[str, ResidualQualityModel] = {}
        self._drift_events: deque[dict[str, Any]] = deque(maxlen=self.config.drift_queue_max)
        self._window: list[tuple[str, dict[str, float] | None]] = []
        self._window_pos = 0
        self._n_updates = 0
        self._since_replan = 0
        self.mu = 0.0  # shadow price of quality (quality per USD)
        self.mu_hi = 0.0  # price applied to the fraction ``mu_mix`` of marginal requests
        self.mu_mix = 0.0
        self._xloss = 0.0  # EW mean expected exploration loss per request (quality units)
        self._xloss_w = 0.0
        self._plan_info: dict[str, Any] = {}
        self._ref_candidates: set[str] = set()  # arms that may still be the best one
        self._rng = random.Random(self.config.seed)
        self._drift_params = {
            "delta": self.config.drift_delta,
            "threshold": self.config.drift_threshold,
            "warmup": self.config.drift_warmup,
        }
        for task_type, task_arms in (arms or {}).items():
            self.register_arms(task_type, task_arms)

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
            self._cost_hints[arm] = float(c)

    def set_objective(self, scope: str, objective: Objective) -> None:
        """Set the objective of a task type, a task family or ``"*"`` (default)."""
        self.objectives[scope] = objective

    def objective_for(self, task_type: str) -> Objective:
        obj = self.objectives.get(task_type)
        if obj is None:
            obj = self.objectives.get(family_of(task_type))
            if obj is None:
                obj = self.objectives.get("*")
        return obj or Objective()

    # ------------------------------------------------------------------ internals
    def _task(self, task_type: str, create_default: bool = True) -> _Task:
        task = self._tasks.get(task_type)
        if task is None:
            fam = family_of(task_type)
            task = _Task(fam, fam if self.config.ctx_scope == "family" else task_type)
            self._tasks[task_type] = task
            if create_default:
                for arm in self.default_arms:
                    task.arms[arm] = self._new_arm_stats(task.family, arm)
        return task

    def _new_arm_stats(self, family: str, arm: str) -> ArmStats:
        st = ArmStats(latency_window=self.config.latency_window, drift_params=self._drift_params)
        st.prior = self._prior_for(family, arm)
        return st

    def _prior_for(self, family: str, arm: str) -> tuple[float, float, float]:
        pr = self._priors.get(family + "\x1f" + arm)
        if pr is not None:
            return pr
        g = self._arm_prior.get(arm)
        if g is not None:
            p0 = g[0]
            return (p0, self.config.default_prior_strength, max(p0 * (1 - p0), 0.01))
        return (0.5, self.config.default_prior_strength, 0.25)

    def _price(self, obj: Objective) -> float:
        if obj.wtp_per_usd is not None:
            return obj.wtp_per_usd
        if self.config.fleet_quality_target is not None:
            return self.mu
        if obj.quality_floor is not None or obj.relative_quality_floor is not None:
            return _INF
        return 0.0

    def _arm_slope(self, arm: str) -> float:
        ac = self._arm_cost.get(arm)
        if ac is None or ac[2] <= 0:
            return 0.0
        return ac[1] / ac[2]

    def _expected_cost(self, arm: str, st: ArmStats, tokens: float | None) -> float:
        cm = st.cost
        if cm.n <= 0:
            ac = self._arm_cost.get(arm)
            if ac is None or ac[0].n <= 0:
                return self._cost_hints.get(arm, 0.0)
            cm = ac[0]
        c = cm.mean_cost
        if tokens is not None and cm.cxx >= 0:
            c += self._arm_slope(arm) * (tokens - cm.mean_tok)
        floor = 0.05 * cm.mean_cost
        return c if c > floor else floor

    def _estimates(
        self, task: _Task, arm_keys: Sequence[str], features: Mapping[str, float] | None
    ) -> tuple[list[float], list[float], list[float], list[float | None]]:
        qs: list[float] = []
        vs: list[float] = []
        cs: list[float] = []
        lats: list[float | None] = []
        tokens = features.get(COST_FEATURE) if features else None
        use_ctx = bool(features) and self.config.contextual
        fam = task.ctx_prefix
        min_lat = self.config.min_latency_obs
        xc = task.centred(features) if use_ctx else None  # type: ignore[arg-type]
        cfg_cal = self.config.ctx_calibration_prior
        for a in arm_keys:
            st = task.arms[a]
            p0, m, v0 = st.effective_prior()
            post = st.quality
            q = (post.n * post.mu + m * p0) / (post.n + m)
            if use_ctx:
                model = self._ctx.get(fam + "\x1f" + a)
                if model is not None and model.n > model.warmup:
                    lam = model.calibration(cfg_cal)
                    if lam > 0.0:
                        q += lam * (model.predict_one(xc) - st.r_bar)  # type: ignore[arg-type]
                    q = 0.0 if q < 0.0 else (1.0 if q > 1.0 else q)
            qs.append(q)
            vs.append(post.variance(p0, m, v0))
            cs.append(self._expected_cost(a, st, tokens))
            lats.append(st.latency.p95() if len(st.latency) >= min_lat else None)
        return qs, vs, cs, lats

    @staticmethod
    def _feasible(obj: Objective, qs: Sequence[float], lats: Sequence[float | None]) -> list[bool]:
        k = len(qs)
        ok = [True] * k
        floor = obj.quality_floor
        if obj.relative_quality_floor is not None:
            rel = obj.relative_quality_floor * max(qs)
            floor = rel if floor is None else max(floor, rel)
        for i in range(k):
            if floor is not None and qs[i] < floor - 1e-12:
                ok[i] = False
            if obj.latency_p95_ms is not None:
                lat = lats[i]
                if lat is not None and lat > obj.latency_p95_ms:
                    ok[i] = False
        return ok

    @staticmethod
    def _quality_floor(obj: Objective, qs: Sequence[float]) -> float | None:
        floor = obj.quality_floor
        if obj.relative_quality_floor is not None:
            rel = obj.relative_quality_floor * max(qs)
            floor = rel if floor is None else max(floor, rel)
        return floor

    @staticmethod
    def _utilities(
        obj: Objective,
        price: float,
        qs: Sequence[float],
        cs: Sequence[float],
        lats: Sequence[float | None],
    ) -> list[float]:
        lw = obj.latency_weight_per_s
        out = []
        for q, c, lat in zip(qs, cs, lats, strict=True):
            u = q
            if lw and lat is not None:
                u -= lw * lat / 1000.0
            if price == _INF:
                u = -c + 1e-9 * u  # cheapest eligible arm, ties broken by quality
            elif price:
                u -= price * c
            out.append(u)
        return out

    @staticmethod
    def _argmax(us: Sequence[float], cs: Sequence[float], ok: Sequence[bool]) -> int:
        best = -1
        for i in range(len(us)):
            if not ok[i]:
                continue
            if best < 0 or us[i] > us[best] or (us[i] == us[best] and cs[i] < cs[best]):
                best = i
        return best

    def _choice_probs(
        self,
        task: _Task,
        arm_keys: Sequence[str],
        obj: Objective,
        qs: Sequence[float],
        vs: Sequence[float],
        cs: Sequence[float],
        lats: Sequence[float | None],
        price: float,
    ) -> tuple[list[float], int, list[float], list[bool], bool]:
        """Choice probabilities at one price: greedy arm plus budgeted exploration."""
        cfg = self.config
        k = len(arm_keys)
        ok = self._feasible(obj, qs, lats)
        relaxed = not any(ok)
        if relaxed:  # nothing meets the constraints: best expected quality
            ok = [True] * k
            us = list(qs)
        else:
            us = self._utilities(obj, price, qs, cs, lats)
        g = self._argmax(us, cs, ok)
        probs = [0.0] * k
        if k == 1:
            probs[0] = 1.0
            return probs, g, us, ok, relaxed
        # exploration probabilities (Thompson-style, exact propensities)
        floor_q = self._quality_floor(obj, qs)
        sg = vs[g]
        raw = 0.0
        for i in range(k):
            if i == g:
                continue
            if price == _INF and not relaxed:
                # cost-minimisation: a cheaper arm is better iff it meets the floor
                p = 1.0 if cs[i] < cs[g] else 0.0
            else:
                scale = math.sqrt(vs[i] + sg)
                p = _phi((us[i] - us[g]) / scale) if scale > 0 else 0.0
            if floor_q is not None and not relaxed and p > 0.0:
                p *= _phi((qs[i] - floor_q) / math.sqrt(vs[i]))
            if obj.latency_p95_ms is not None and not ok[i] and lats[i] is not None:
                p = 0.0  # known to violate the latency ceiling
            probs[i] = p
            raw += p
        plausible = self._plausible(arm_keys, probs, qs, vs)
        budget_left = (
            task.explores < cfg.explore_allowance * (k - 1) + cfg.max_explore_frac * task.picks
        )
        cap = cfg.max_explore_step if budget_left else 0.0
        if raw > cap:
            scale_down = cap / raw
            probs = [p * scale_down for p in probs]
            raw = cap
        if raw > 0.0 and price != _INF:
            # the expected waste of exploring -- quality given up plus extra cost (valued at
            # the price) -- is capped per request: arms about as good and as cheap as the
            # greedy one are explored freely, clearly worse or dearer ones rarely.  (When only
            # cost matters, exploration is of cheaper arms that may meet the floor, limited by
            # the budget alone.)
            regret = 0.0
            qg, cg = qs[g], cs[g]
            px = price
            young = cfg.explore_min_obs
            # young plausible arms are exempt from the cap: their fair trial is not waste yet
            capped = [
                task.arms[a].quality.n >= young or not plausible[i] for i, a in enumerate(arm_keys)
            ]
            for i in range(k):
                if i != g and capped[i]:
                    waste = (qg - qs[i] if qs[i] < qg else 0.0) + (
                        px * (cs[i] - cg) if cs[i] > cg else 0.0
                    )
                    regret += probs[i] * waste
            if regret > cfg.explore_regret_rate:
                scale_down = cfg.explore_regret_rate / regret
                probs = [p * scale_down if capped[i] else p for i, p in enumerate(probs)]
        rel_target = cfg.fleet_quality_target
        if rel_target is None:
            rel_target = obj.relative_quality_floor
        if cfg.identify_weight > 0.0 and rel_target is not None:
            # targets relative to the best arm need to know which arm is the best: an arm that
            # may be materially better (by more than the slack the target leaves) than the
            # apparent best is sampled whatever it costs -- otherwise an unlucky start can leave
            # the reference under-estimated for a long time
            b = max(range(k), key=lambda i: qs[i])
            slack = (1.0 - rel_target) * qs[b]
            for i in range(k):
                if i == g or i == b:
                    continue
                scale = math.sqrt(vs[i] + vs[b])
                if scale > 0:
                    p_id = cfg.identify_weight * _phi((qs[i] - qs[b] - slack) / scale)
                    if p_id > probs[i]:
                        probs[i] = min(p_id, cfg.max_explore_step)
        if (
            task.audit > 0.0
            and cfg.fleet_quality_target is not None
            and (ref_arm := self._plan_info.get("reference_arm")) is not None
            and price != _INF
        ):
            r = arm_keys.index(ref_arm) if ref_arm in arm_keys else None
            if r is not None and r != g:
                # reference audit: the fleet target is judged against the reference arm's
                # counterfactual total, so where one more observation of it is worth more
                # (in fleet quality) than the extra cost at the price, take it.  Decided on cost
                # alone: sampling the reference less where its estimate looks worse would leave
                # that estimate biased low
                waste = price * (cs[r] - cs[g]) if cs[r] > cs[g] else 0.0
                if task.audit > waste:
                    p_audit = min(
                        cfg.max_explore_step, cfg.identify_weight * (1.0 - waste / task.audit)
                    )
                    if p_audit > probs[r]:
                        probs[r] = p_audit
        floor_total = cfg.explore_floor
        if task.boost_until > task.n:
            floor_total = max(floor_total, cfg.drift_explore_floor)
        per_arm_floor = floor_total / (k - 1)
        # a task's fair-trial traffic does not grow with its number of arms
        fair_trial = cfg.young_explore / (k - 1)
        for i in range(k):
            if i == g:
                continue
            if probs[i] < per_arm_floor:
                probs[i] = per_arm_floor
            # fair trial: an arm whose evidence on this task (own observations plus prior
            # pseudo-observations) is still thin is sampled at a fixed rate
            st = task.arms[arm_keys[i]]
            if probs[i] < fair_trial and plausible[i]:
                _p0, m, _v0 = st.effective_prior()
                if st.quality.n + m < cfg.explore_min_obs:
                    probs[i] = fair_trial
        others = sum(probs) - probs[g]
        limit = max(cfg.max_explore_step, floor_total)
        if others > limit:
            probs = [p * limit / others if i != g else 0.0 for i, p in enumerate(probs)]
            others = limit
        probs[g] = 1.0 - others
        return probs, g, us, ok, relaxed

    def _plausible(
        self,
        arm_keys: Sequence[str],
        thompson: Sequence[float],
        qs: Sequence[float],
        vs: Sequence[float],
    ) -> list[bool]:
        """Arms worth a fair trial and uncapped exploration while their evidence is thin.

        An arm qualifies if its Thompson probability of beating the greedy arm reaches the
        exploration floor, or if it may be the best arm -- the one quality targets are measured
        against: with a fleet target, a candidate for the fleet's best single arm (decided at
        re-plan from the counterfactual totals); without, an arm whose chance of the highest
        quality on this task reaches the floor.  With many arms, trying each on every task type
        costs more quality than a 5% target leaves; an arm known to be both worse and no better
        value is left to the exploration floor and the regret cap.
        """
        bar = self.config.explore_floor
        if self.config.fleet_quality_target is not None:
            cands = self._ref_candidates
            return [p >= bar or a in cands for a, p in zip(arm_keys, thompson, strict=True)]
        b = max(range(len(qs)), key=lambda i: qs[i])
        out = []
        for i, p in enumerate(thompson):
            scale = math.sqrt(vs[i] + vs[b])
            best = i == b or (scale > 0 and _phi((qs[i] - qs[b]) / scale) >= bar)
            out.append(p >= bar or best)
        return out

    # ------------------------------------------------------------------ public API
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
        if candidates is not None:
            for a in candidates:
                if a not in task.arms:
                    task.arms[a] = self._new_arm_stats(task.family, a)
            arm_keys = list(candidates)
        else:
            arm_keys = list(task.arms)
        if not arm_keys:
            raise ValueError(f"no arms registered for task type {task_type!r}")
        obj = self.objective_for(task_type)
        qs, vs, cs, lats = self._estimates(task, arm_keys, features)
        k = len(arm_keys)
        price = self._price(obj)
        mixing = (
            obj.wtp_per_usd is None
            and self.config.fleet_quality_target is not None
            and 0.0 < self.mu_mix < 1.0
        )
        if mixing:
            # fractional plan: the marginal requests take the cheaper side with probability
            # ``mu_mix`` (randomised rounding between the two prices around the breakpoint)
            probs_lo, g_lo, us, ok, relaxed = self._choice_probs(
                task, arm_keys, obj, qs, vs, cs, lats, self.mu
            )
            probs_hi, g_hi, us_hi, _ok, _rel = self._choice_probs(
                task, arm_keys, obj, qs, vs, cs, lats, self.mu_hi
            )
            f = self.mu_mix
            probs = [
                (1.0 - f) * p_lo + f * p_hi for p_lo, p_hi in zip(probs_lo, probs_hi, strict=True)
            ]
            greedy = {g_lo, g_hi}
            q_greedy = (1.0 - f) * qs[g_lo] + f * qs[g_hi]
            g = g_lo if (1.0 - f) >= f else g_hi
            if g == g_hi:
                us = us_hi
        else:
            probs, g, us, ok, relaxed = self._choice_probs(
                task, arm_keys, obj, qs, vs, cs, lats, price
            )
            greedy = {g}
            q_greedy = qs[g]

        r = (rng or self._rng).random()
        chosen = k - 1
        acc = 0.0
        for i in range(k):
            acc += probs[i]
            if r < acc:
                chosen = i
                break
        explored = chosen not in greedy
        # expected quality given up by exploring (the planner compensates for it)
        x_loss = q_greedy
        for i in range(k):
            x_loss -= probs[i] * qs[i]
        w = 1.0 / self.config.plan_window
        self._xloss = (1.0 - w) * self._xloss + w * x_loss
        self._xloss_w = (1.0 - w) * self._xloss_w + w
        task.picks += 1
        if explored:
            task.explores += 1

        if relaxed:
            reason = "no arm meets the constraints: best expected quality"
        elif explored:
            reason = f"explore (p={probs[chosen]:.3f}); greedy was {arm_keys[g]}"
        elif price == _INF and obj.wtp_per_usd is None and self.config.fleet_quality_target:
            reason = "cheapest arm: the fleet quality target has slack"
        elif price == _INF:
            reason = "cheapest arm meeting the quality/latency constraints"
        elif price == 0.0:
            reason = "best expected quality"
        elif obj.wtp_per_usd is not None:
            reason = f"max quality - {price:.4g} x cost (willingness to pay)"
        elif mixing:
            reason = (
                f"max quality - mu x cost (fleet shadow price mu in [{self.mu:.4g}, "
                f"{self.mu_hi:.4g}]/USD, marginal requests split {1 - self.mu_mix:.2f}/"
                f"{self.mu_mix:.2f})"
            )
        else:
            reason = f"max quality - mu x cost (fleet shadow price mu={price:.4g}/USD)"
        alternatives = tuple(
            {
                "arm": arm_keys[i],
                "probability": probs[i],
                "expected_quality": qs[i],
                "quality_sd": math.sqrt(vs[i]),
                "expected_cost_usd": cs[i],
                "p95_latency_ms": lats[i],
                "feasible": ok[i],
                "score": us[i],
            }
            for i in range(k)
        )
        st = task.arms[arm_keys[chosen]]
        return Decision(
            arm=arm_keys[chosen],
            propensity=probs[chosen],
            expected_quality=qs[chosen],
            expected_cost_usd=cs[chosen],
            expected_latency_ms=st.latency.mean(),
            alternatives=alternatives,
            reason=reason,
            task_type=task_type,
            explored=explored,
        )

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

        Returns the drift events raised by this update (they are also queued for
        :meth:`drain_drift_events`).
        """
        cfg = self.config
        task = self._task(task_type)
        st = task.arms.get(arm)
        if st is None:
            st = task.arms[arm] = self._new_arm_stats(task.family, arm)
        if not success:
            q = 0.0
        else:
            q = 1.0 if quality is None else float(quality)
            q = 0.0 if q < 0.0 else (1.0 if q > 1.0 else q)
        tokens = features.get(COST_FEATURE) if features else None
        events: list[dict[str, Any]] = []

        # quality.  Additive model q(x) = intercept(task, arm) + lam * [r_arm(x) - rbar]: the
        # posterior is over the task-level intercept, the residual model r over prompt-level
        # deviations (features centred per task, and predictions centred on their running mean
        # rbar over the task's requests, so it only ranks prompts within a task), lam its
        # prequential calibration slope.  By default the intercept learns from the raw quality
        # (``ctx_backfit=False``): backfitting on selected requests proved over-confident.
        q_before = st.mean_quality()
        fam = task.ctx_prefix
        r_chosen = 0.0
        if features and cfg.contextual:
            xc = task.centred(features)
            task.learn_features(features, cfg.ctx_center_window)
            window = cfg.ctx_center_window
            for a, other in task.arms.items():
                m_a = self._ctx.get(fam + "\x1f" + a)
                if m_a is None:
                    if other is not st:
                        continue
                    m_a = self._ctx[fam + "\x1f" + a] = ResidualQualityModel(
                        prior_variance=cfg.ctx_prior_variance,
                        noise_variance=cfg.ctx_noise_variance,
                        clip=cfg.ctx_clip,
                        warmup=cfg.ctx_warmup,
                    )
                r_a = m_a.predict_one(xc)
                if m_a.n > m_a.warmup:
                    dev = r_a - other.r_bar
                    if other is st:
                        m_a.observe_calibration(dev, q - q_before)
                        r_chosen = m_a.calibration(cfg.ctx_calibration_prior) * dev
                    elif cfg.ref_residual_calibrated:
                        other.unobs_r += m_a.calibration(cfg.ctx_calibration_prior) * dev
                    else:
                        other.unobs_r += dev
                    other.r_n += 1.0
                    other.r_bar += (r_a - other.r_bar) / min(other.r_n, window)
                if other is st:
                    m_a.learn_one(xc, q - q_before)
        st.quality.add(q - r_chosen if cfg.ctx_backfit else q)
        st.add_recent(q, cfg.recent_alpha)
        # counterfactual bookkeeping for the fleet reference
        st.obs_sum += q
        for other in task.arms.values():
            if other is not st:
                other.unobs_n += 1.0
        if st.q_drift.update(q):
            events.append(self._on_quality_drift(task_type, task, arm, st, q_before))

        # cost
        if cost_usd is not None:
            c = float(cost_usd)
            c_hat = self._expected_cost(arm, st, tokens) if st.cost.n > 0 else None
            ac = self._arm_cost.get(arm)
            if ac is None:
                ac = self._arm_cost[arm] = [CostModel(), 0.0, 0.0]
            ac[0].add(tokens, c)
            dxy, dxx = st.cost.add(tokens, c)
            ac[1] += dxy
            ac[2] += dxx
            if c_hat is not None and c > 0 and c_hat > 0:
                if st.cost_drift.update(math.log(c / c_hat)):
                    events.append(self._on_cost_drift(task_type, arm, st, c, tokens, c_hat))

        # latency
        if latency_ms is not None:
            lat = float(latency_ms)
            st.latency.add(lat)
            if st.lat_drift.update(math.log(lat if lat > 1e-3 else 1e-3)):
                before = st.latency.p95()
                st.latency.keep_recent(max(cfg.min_latency_obs, 1))
                events.append(
                    self._event(
                        task_type,
                        arm,
                        "latency",
                        st.lat_drift.last_direction,
                        before,
                        st.latency.p95(),
                    )
                )

        # fleet accounting and planning window
        task.n += 1
        task.q_sum += q
        self._n_updates += 1
        item = (task_type, dict(features) if features else None)
        if len(self._window) < self.config.plan_window:
            self._window.append(item)
        else:
            self._window[self._window_pos] = item
            self._window_pos = (self._window_pos + 1) % self.config.plan_window
        self._since_replan += 1
        if self._since_replan >= min(cfg.replan_every, max(8, self._n_updates // 2)):
            self.replan()
        if events:
            self._drift_events.extend(events)
        return events

    def drain_drift_events(self) -> list[dict[str, Any]]:
        """Return and clear the queued drift events, oldest first (at most the newest
        ``drift_queue_max`` since the last drain)."""
        out = list(self._drift_events)
        self._drift_events.clear()
        return out

    # ------------------------------------------------------------------ drift handling
    def _event(
        self, task_type: str, arm: str, metric: str, direction: int, before: Any, after: Any
    ) -> dict[str, Any]:
        return {
            "kind": "drift",
            "task_type": task_type,
            "arm": arm,
            "metric": metric,
            "direction": "increase" if direction > 0 else "decrease",
            "update_index": self._n_updates,
            "before": before,
            "after": after,
        }

    def _on_quality_drift(
        self, task_type: str, task: _Task, arm: str, st: ArmStats, q_before: float
    ) -> dict[str, Any]:
        cfg = self.config
        st.rebase_counterfactual()
        recent = st.recent_q if st.recent_q is not None else st.quality.mu
        var = max((st.recent_q2 or 0.0) - recent * recent, 0.01)
        st.quality.discount(cfg.drift_keep, mean=recent, var=var)
        st.prior_cap = cfg.drift_keep
        st.n_drifts += 1
        task.boost_until = task.n + cfg.drift_explore_events
        task.explores = 0
        task.picks = 0
        return self._event(
            task_type, arm, "quality", st.q_drift.last_direction, q_before, st.mean_quality()
        )

    def _on_cost_drift(
        self, task_type: str, arm: str, st: ArmStats, c: float, tokens: float | None, c_hat: float
    ) -> dict[str, Any]:
        ac = self._arm_cost[arm]
        ac[1] -= st.cost.cxy
        ac[2] -= st.cost.cxx
        st.cost = CostModel()
        st.cost.add(tokens, c)
        return self._event(task_type, arm, "cost", st.cost_drift.last_direction, c_hat, c)

    # ------------------------------------------------------------------ planning
    def _estimate_priors(self) -> None:
        """Empirical-Bayes priors for every ``(task_type, arm)`` quality posterior.

        Two-level model per task family ``f`` and arm ``a``::

            mean_q(t, a) = g_a + beta_a * d(t, -a) + e(t, a),   e ~ N(0, tau2_a)

        ``g_a`` is the arm's typical quality in the family, ``d(t, -a)`` the task's difficulty as
        measured by the *other* arms on the same task (their reliability-weighted deviations from
        their own ``g``), ``beta_a`` and ``tau2_a`` are fitted across task types by weighted
        method of moments.  A task type on which the cheap arm struggles is therefore expected to
        be hard for the expensive arm too, even when the expensive arm is rarely sampled there:
        this keeps the reference (best arm) quality well estimated on task types the policy has
        moved to cheaper arms.  The prior strength is ``m = v_within / tau2`` pseudo-observations.
        """
        cfg = self.config
        m_min, m_max = cfg.prior_strength_min, cfg.prior_strength_max
        groups: dict[str, list[tuple[str, float, float, float]]] = {}
        arm_tot: dict[str, list[float]] = {}
        for task_type, task in self._tasks.items():
            for arm, st in task.arms.items():
                post = st.quality
                if post.n <= 0:
                    continue
                groups.setdefault(task.family + "\x1f" + arm, []).append(
                    (task_type, post.n, post.mu, post.m2)
                )
                t = arm_tot.setdefault(arm, [0.0, 0.0])
                t[0] += post.n
                t[1] += post.n * post.mu
        k0 = cfg.default_prior_strength
        # smoothed towards 1/2 by the default prior strength: an arm seen a couple of times
        # (say, one wrong answer) is not yet known to be useless
        self._arm_prior = {
            a: ((t[1] + 0.5 * k0) / (t[0] + k0), k0, 0.25) for a, t in arm_tot.items()
        }
        # level 1: one-way empirical Bayes per (family, arm)
        level1: dict[str, tuple[float, float, float, float]] = {}  # key -> (g, m, v_w, tau2)
        for key, rows in groups.items():
            n_tot = sum(r[1] for r in rows)
            # mean and per-observation variance smoothed by ``k0`` pseudo-observations of a
            # Bernoulli(g_s): a few identical outcomes must not make the prior certain
            g = (sum(r[1] * r[2] for r in rows) + 0.5 * k0) / (n_tot + k0)
            v_w = (sum(r[3] for r in rows) + k0 * g * (1.0 - g)) / (n_tot + k0)
            m = cfg.default_prior_strength
            tau2 = v_w / m
            big = [r for r in rows if r[1] >= 2.0]
            if len(big) >= cfg.eb_min_tasks:
                nb = sum(r[1] for r in big)
                mb = sum(r[1] * r[2] for r in big) / nb
                between = sum(r[1] * (r[2] - mb) ** 2 for r in big) / nb
                # the between-task variance is estimated from few task types: a prior learned
                # from k of them is worth at most ~2k pseudo-observations on a new one
                m_cap = min(m_max, 2.0 * len(big))
                tau2 = max(between - len(big) * v_w / nb, v_w / m_cap)
                m = min(max(v_w / tau2, m_min), m_cap)
                ws = [1.0 / (tau2 + v_w / r[1]) for r in big]
                g = sum(w * r[2] for w, r in zip(ws, big, strict=True)) / sum(ws)
            level1[key] = (g, m, v_w, tau2)
        self._priors = {k: (v[0], v[1], v[2]) for k, v in level1.items()}

        # level 2: task difficulty seen by the other arms
        diff: dict[str, dict[str, float]] = {}  # task_type -> arm -> reliability-weighted dev
        for key, rows in groups.items():
            g, m, _v, _t = level1[key]
            arm = key.split("\x1f", 1)[1]
            for task_type, n, mu, _m2 in rows:
                diff.setdefault(task_type, {})[arm] = (mu - g) * n / (n + m)

        def other_difficulty(task_type: str, arm: str) -> float | None:
            devs = diff.get(task_type)
            if not devs:
                return None
            vals = [d for b, d in devs.items() if b != arm]
            return sum(vals) / len(vals) if vals else None

        level2: dict[str, tuple[float, float]] = {}  # key -> (beta, m)
        for key, rows in groups.items():
            g, m, v_w, tau2 = level1[key]
            arm = key.split("\x1f", 1)[1]
            pts = []
            for task_type, n, mu, _m2 in rows:
                x = other_difficulty(task_type, arm)
                if x is not None and n >= 2.0:
                    pts.append((x, mu - g, n))
            if len(pts) < cfg.eb_min_tasks:
                continue
            ws = [1.0 / (tau2 + v_w / n) for _x, _y, n in pts]
            sxx = sum(w * x * x for w, (x, _y, _n) in zip(ws, pts, strict=True))
            if sxx <= 1e-12:
                continue
            beta = sum(w * x * y for w, (x, y, _n) in zip(ws, pts, strict=True)) / sxx
            beta = min(max(beta, 0.0), 1.5)
            nb = sum(n for _x, _y, n in pts)
            res = sum(n * (y - beta * x) ** 2 for x, y, n in pts) / nb
            tau2_res = max(res - len(pts) * v_w / nb, v_w / m_max)
            tau2_res = min(tau2_res, tau2)
            m_cap = min(m_max, 2.0 * len(pts))
            level2[key] = (beta, min(max(v_w / tau2_res, m_min), m_cap))

        for task_type, task in self._tasks.items():
            for arm, st in task.arms.items():
                key = task.family + "\x1f" + arm
                base = self._prior_for(task.family, arm)
                l2 = level2.get(key)
                if l2 is not None:
                    x = other_difficulty(task_type, arm)
                    if x is not None:
                        p0 = min(max(base[0] + l2[0] * x, 0.001), 0.999)
                        st.prior = (p0, l2[1], base[2])
                        continue
                st.prior = base

    @staticmethod
    def _total_variance(st: ArmStats) -> float:
        """Variance of an arm's counterfactual total on its task (unserved requests only)."""
        unseen = st.unobs_n
        if unseen <= 0:
            return 0.0
        _p0, m, v0 = st.effective_prior()
        v_obs = (st.quality.m2 + m * v0) / (st.quality.n + m)
        return unseen * unseen * st.quality_var() + unseen * v_obs

    def _reference_totals(self) -> dict[str, tuple[float, float]]:
        """Estimated total quality (and its variance) each arm would have delivered.

        Only arms available on every task type with traffic are candidates for the fleet's
        "best single arm"; if there is none the per-task best arm is used (key ``""``).
        """
        cfg = self.config
        totals: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        n_tasks = 0
        best_t = 0.0
        best_v = 0.0
        for task in self._tasks.values():
            if task.n <= 0 or not task.arms:
                continue
            n_tasks += 1
            best = None
            for arm, st in task.arms.items():
                t = st.counterfactual_total(cfg.ref_residuals, cfg.ref_optimism)
                acc = totals.setdefault(arm, [0.0, 0.0])
                acc[0] += t
                acc[1] += self._total_variance(st)
                counts[arm] = counts.get(arm, 0) + 1
                if best is None or t > best[0]:
                    best = (t, st)
            best_t += best[0]  # type: ignore[index]
            best_v += self._total_variance(best[1])  # type: ignore[index]
        out = {a: (v[0], v[1]) for a, v in totals.items() if counts[a] == n_tasks}
        if not out and n_tasks:
            out = {"": (best_t, best_v)}
        return out

    def _reference_arm(self) -> str | None:
        tots = self._reference_totals()
        if not tots:
            return None
        arm = max(tots, key=lambda a: (tots[a][0], a))
        return arm or None

    def replan(self) -> None:
        """Re-estimate priors and the fleet shadow price (called automatically by ``update``)."""
        cfg = self.config
        self._since_replan = 0
        for model in self._ctx.values():
            if model.needs_refit:
                model.optimise_prior()
        self._estimate_priors()
        target = cfg.fleet_quality_target
        if target is None:
            return
        tots = self._reference_totals()
        n_tot = sum(t.n for t in self._tasks.values() if t.arms)
        q_pol = sum(t.q_sum for t in self._tasks.values() if t.arms)
        if not tots or n_tot <= 0:
            self.mu = self.mu_hi = self.mu_mix = 0.0
            return
        ref_key = max(tots, key=lambda a: (tots[a][0], a))
        ref_arm = ref_key or None
        ref, var = tots[ref_key]
        if ref <= 0:
            self.mu = self.mu_hi = self.mu_mix = 0.0
            return
        se = math.sqrt(var) / ref
        self._plan_audits(ref_arm, target, var)
        self._ref_candidates = {ref_key} if ref_key else set()
        for a, (t, v) in tots.items():
            spread = math.sqrt(v + var)
            if a and spread > 0.0 and _phi((t - ref) / spread) >= cfg.explore_floor:
                self._ref_candidates.add(a)
        # the ratio must hold against every arm that may plausibly be the best one: an arm with
        # few observations and a poor start can still turn out to be the reference
        z = cfg.target_z
        ref_ucb = max(t + z * math.sqrt(v) for t, v in tots.values())
        aim = min(target * ref_ucb / ref, 1.0)
        horizon = max(cfg.pacing_horizon * n_tot, cfg.plan_window)
        t_eff = aim + (aim * ref - q_pol) / (horizon * ref / n_tot)
        t_eff = min(max(t_eff, aim - 0.25), 1.5)
        # greedy choices must also cover the expected loss of exploratory picks
        x_rate = self._xloss / self._xloss_w if self._xloss_w > 0 else 0.0
        t_plan = t_eff + x_rate * n_tot / ref
        self.mu, self.mu_hi, self.mu_mix = self._solve_price(ref_arm, t_plan)
        self._plan_info = {
            "updates": self._n_updates,
            "reference_arm": ref_arm,
            "estimated_quality_ratio": q_pol / ref,
            "ratio_se": se,
            "aim": aim,
            "paced_ratio": t_eff,
            "planned_ratio": t_plan,
            "exploration_loss": x_rate,
            "mu": self.mu,
            "mu_hi": self.mu_hi,
            "marginal_split": self.mu_mix,
        }

    def _plan_audits(self, ref_arm: str | None, target: float, var: float) -> None:
        """Value of one more observation of the reference arm on each task type.

        The planner must deliver ``target x (reference total + z sd)``: one more observation of
        the reference arm on a task type shrinks the variance of its counterfactual total there
        by about ``unserved^2 x var(mean) / (n + m + 1)`` and so lowers the quality the fleet
        must deliver by ``target x z x dV / (2 sd)``.  That is compared, per decision, with the
        extra cost of the observation at the shadow price.
        """
        sd = math.sqrt(var) if var > 0.0 else 0.0
        scale = target * self.config.target_z / (2.0 * sd) if sd > 0.0 else 0.0
        for task in self._tasks.values():
            st = task.arms.get(ref_arm) if ref_arm is not None else None
            if st is None or scale <= 0.0 or st.unobs_n <= 0:
                task.audit = 0.0
                continue
            _p0, m, _v0 = st.effective_prior()
            task.audit = scale * st.unobs_n**2 * st.quality_var() / (st.quality.n + m + 1.0)

    def _solve_price(self, ref_arm: str | None, t_eff: float) -> tuple[float, float, float]:
        """Shadow price whose planned fleet quality on the window is ``t_eff``.

        Returns ``(mu_lo, mu_hi, f)``: the breakpoints of all window requests are taken in
        increasing order while the quality budget lasts; the requests at the marginal breakpoint
        are split, a fraction ``f`` of them priced at ``mu_hi`` (switched to the cheaper arm)
        and the rest at ``mu_lo``.  This randomised rounding matters when many requests share a
        breakpoint (no prompt features, or a single task type).
        """
        base_q = 0.0
        ref_q = 0.0
        breaks: list[tuple[float, float]] = []  # (breakpoint mu, quality change)
        cache: dict[str, tuple[_Task, list[str], Objective]] = {}
        # chronological order, so that a restored policy sums in the same order
        for task_type, feats in self._window[self._window_pos :] + self._window[: self._window_pos]:
            entry = cache.get(task_type)
            if entry is None:
                task = self._tasks.get(task_type)
                if task is None or not task.arms:
                    continue
                entry = cache[task_type] = (task, list(task.arms), self.objective_for(task_type))
            task, arm_keys, obj = entry
            qs, _vs, cs, lats = self._estimates(task, arm_keys, feats)
            if ref_arm is not None and ref_arm in task.arms:
                ref_q += qs[arm_keys.index(ref_arm)]
            else:
                ref_q += max(qs)
            ok = self._feasible(obj, qs, lats)
            if not any(ok):
                base_q += max(qs)
                continue
            if obj.wtp_per_usd is not None:
                us = self._utilities(obj, obj.wtp_per_usd, qs, cs, lats)
                base_q += qs[self._argmax(us, cs, ok)]
                continue
            u0 = self._utilities(obj, 0.0, qs, cs, lats)
            j = self._argmax(u0, cs, ok)
            base_q += qs[j]
            # walk the upper cost/quality hull towards cheaper arms
            while True:
                best_k, best_bp = -1, _INF
                for i in range(len(arm_keys)):
                    if ok[i] and cs[i] < cs[j]:
                        bp = (u0[j] - u0[i]) / (cs[j] - cs[i])
                        if bp < best_bp or (bp == best_bp and cs[i] < cs[best_k]):
                            best_k, best_bp = i, bp
                if best_k < 0:
                    break
                breaks.append((max(best_bp, 0.0), qs[best_k] - qs[j]))
                j = best_k
        budget = base_q - t_eff * ref_q
        if budget <= 0:
            return 0.0, 0.0, 0.0
        if not breaks:
            # the quality target is slack and nothing cheaper is left: only cost matters
            return _INF, _INF, 0.0
        breaks.sort()
        loss = 0.0
        last = 0.0
        i, n = 0, len(breaks)
        while i < n:
            bp = breaks[i][0]
            j = i
            group_loss = 0.0
            while j < n and breaks[j][0] <= bp * (1.0 + 1e-9) + 1e-300:
                group_loss -= breaks[j][1]
                j += 1
            if loss + group_loss > budget:
                frac = (budget - loss) / group_loss if group_loss > 0 else 0.0
                nxt = breaks[j][0] if j < n else 4.0 * bp
                return 0.5 * (last + bp), 0.5 * (bp + nxt), frac
            loss += group_loss
            last = bp
            i = j
        # every switch is affordable: the quality constraint is slack, only cost matters
        return _INF, _INF, 0.0

    # ------------------------------------------------------------------ introspection
    def status(self) -> dict[str, Any]:
        """Fleet-level planning status (shadow price, estimated quality ratio, ...).

        JSON-safe: an unbounded shadow price (the quality target has slack) is reported as
        ``None``.
        """
        out = {
            "updates": self._n_updates,
            "mu": self.mu,
            "tasks": len(self._tasks),
            **self._plan_info,
        }
        return {k: _enc_inf(v) for k, v in out.items()}

    def arm_summary(self, task_type: str) -> dict[str, dict[str, Any]]:
        """Per-arm estimates of a task type (no features)."""
        task = self._tasks.get(task_type)
        if task is None:
            return {}
        keys = list(task.arms)
        qs, vs, cs, lats = self._estimates(task, keys, None)
        return {
            a: {
                "quality": qs[i],
                "quality_sd": math.sqrt(vs[i]),
                "cost_usd": cs[i],
                "p95_latency_ms": lats[i],
                "observations": task.arms[a].quality.n,
                "drifts": task.arms[a].n_drifts,
            }
            for i, a in enumerate(keys)
        }

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot of the whole policy."""
        window = self._window[self._window_pos :] + self._window[: self._window_pos]
        version, internal, gauss = self._rng.getstate()
        return {
            "version": 1,
            "config": asdict(self.config),
            "default_arms": list(self.default_arms),
            "objectives": {k: asdict(v) for k, v in self.objectives.items()},
            "tasks": {k: t.to_state() for k, t in self._tasks.items()},
            "priors": {k: list(v) for k, v in self._priors.items()},
            "arm_prior": {k: list(v) for k, v in self._arm_prior.items()},
            "arm_cost": {k: [v[0].to_state(), v[1], v[2]] for k, v in self._arm_cost.items()},
            "cost_hints": dict(self._cost_hints),
            "ctx": {k: m.to_state() for k, m in self._ctx.items()},
            "drift_events": list(self._drift_events),
            "window": [[t, f] for t, f in window],
            "n_updates": self._n_updates,
            "since_replan": self._since_replan,
            "mu": _enc_inf(self.mu),
            "mu_hi": _enc_inf(self.mu_hi),
            "mu_mix": self.mu_mix,
            "ref_candidates": sorted(self._ref_candidates),
            "xloss": [self._xloss, self._xloss_w],
            "plan_info": {k: _enc_inf(v) for k, v in self._plan_info.items()},
            "rng": [version, list(internal), gauss],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RoutingPolicy:
        """Rebuild a policy from :meth:`to_state` output (e.g. after a JSON round trip)."""
        names = {f.name for f in fields(PolicyConfig)}
        config = PolicyConfig(**{k: v for k, v in state["config"].items() if k in names})
        policy = cls(
            config=config,
            default_arms=state["default_arms"],
            objectives={k: Objective(**v) for k, v in state["objectives"].items()},
        )
        policy._tasks = {k: _Task.from_state(v) for k, v in state["tasks"].items()}
        policy._priors = {k: tuple(v) for k, v in state["priors"].items()}  # type: ignore[misc]
        policy._arm_prior = {k: tuple(v) for k, v in state["arm_prior"].items()}  # type: ignore[misc]
        policy._arm_cost = {
            k: [CostModel.from_state(v[0]), v[1], v[2]] for k, v in state["arm_cost"].items()
        }
        policy._cost_hints = dict(state["cost_hints"])
        policy._ctx = {k: ResidualQualityModel.from_state(v) for k, v in state["ctx"].items()}
        policy._drift_events.extend(state["drift_events"])  # keeps the newest, up to maxlen
        policy._window = [(t, f) for t, f in state["window"]]
        policy._window_pos = 0  # the window is stored oldest first
        policy._n_updates = state["n_updates"]
        policy._since_replan = state["since_replan"]
        policy.mu = _dec_inf(state["mu"])
        policy.mu_hi = _dec_inf(state["mu_hi"])
        policy.mu_mix = state["mu_mix"]
        policy._ref_candidates = set(state.get("ref_candidates", ()))
        policy._xloss, policy._xloss_w = state["xloss"]
        policy._plan_info = {
            k: (_INF if k in ("mu", "mu_hi") and v is None else v)
            for k, v in state["plan_info"].items()
        }
        version, internal, gauss = state["rng"]
        policy._rng.setstate((version, tuple(internal), gauss))
        return policy
