"""Operator objectives (:class:`Objective`) and the knobs of the method (:class:`PolicyConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .keys import family_of

__all__ = ["LEGACY_SETTINGS", "Objective", "PolicyConfig", "objective_for"]


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
    #: the aim's margin is ``target_z`` standard errors of the reference arm's own total
    #: (``False``: the largest upper bound over every arm, which with many arms is set by the
    #: one with the thinnest evidence and keeps the aim near 1 for a long time; an arm that may
    #: be the best is sampled by identification and reference-candidate trials instead)
    aim_margin_of_reference: bool = True
    #: the fleet's reference arm is the one of the highest total lowered by this many standard
    #: deviations, unless that arm is cheaper than the arm of the highest estimate on the task
    #: types both have served (:func:`.reference.choose_reference`): the highest of a dozen
    #: thin estimates is biased up, and the reference was whichever arm had been luckiest.
    #: Over seeds 0-99 at 0.99 (``bench/backtest.py``) the one-task set missed the target in
    #: 22 runs instead of 31, its nearby world ``cheap-95=0.93`` in 20 instead of 30, MT-Bench
    #: in 24 instead of 25; but the one-task set's misses run deeper (summed shortfall 0.296 ->
    #: 0.405).  ``None``: the highest estimate
    reference_lower_bound_z: float | None = 1.0
    #: an arm cheaper than the fleet's reference arm is scored -- greedy pick, exploration and
    #: the plan -- this many standard deviations of its difference from the reference below
    #: its estimate (:func:`.estimates.against_reference`): the plan's quality at price 0 is
    #: the best estimate of every request, and on thin evidence the best of several estimates
    #: is biased up, so the plan counted surplus it did not have and served the cheaper arm
    #: where it was merely luckier (``None``: the plain estimates)
    switch_risk_z: float | None = 1.0
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
    #: with a fleet target whose plan serves every request its best estimate (shadow price 0):
    #: an arm whose chance of beating the apparent best by more than the slack reaches
    #: ``Phi(-target_z)`` -- the confidence the planner holds the target with -- keeps its
    #: rate (identification's, or its Thompson probability when that is higher) when
    #: exploration is fitted to the slack budget: the ratio is measured against the best arm
    #: in hindsight, and the price has no room left to make up for a wrong one.  Keeping only
    #: identification's own rate was measured worse (one-task set at 0.99, seeds 0-29: 13
    #: misses instead of 10): identifying the best arm sooner pays for the quality it spends
    #: (``False``: scaled down with the rest)
    identify_beyond_slack: bool = True
    #: with a fleet target, at any price: an arm dearer than the fleet's reference arm that may
    #: still be the fleet's best one (a reference candidate) keeps its identification rate
    #: beyond the slack budget, as far as a second allowance of the same size (a fifth of
    #: the slack, at most of the plan's headroom) pays for it, the likeliest to beat the
    #: apparent best first (:mod:`.exploration`).  The plan never serves a dearer arm
    #: for its price, so exploration is its only way back; and the slack budget goes to the
    #: arms likeliest to beat the *greedy* pick, which, when a cheaper and weaker arm is the
    #: reference after an unlucky start of the top arms, is that weaker arm itself: the best
    #: arm was then sampled at the floor and the target was measured against the weaker arm
    #: (``False``: such arms keep their rate only under ``identify_beyond_slack``)
    identify_dearer_candidates: bool = True
    #: fair trial: arms with less evidence (observations + prior pseudo-observations) on a task
    #: than ``explore_min_obs`` are sampled with probability ``young_explore / (arms - 1)``
    #: each, unless they are implausible (see ``explore_floor``)
    explore_min_obs: int = 30
    young_explore: float = 0.2
    #: with a fleet target: share of the quality slack ``(1 - target) x q_greedy`` per request
    #: that exploration's expected quality loss may spend (what is left holds the target and
    #: is the room for cheaper arms).  A fifth, not half: over the proving ground
    #: (``bench/backtest.py``, seeds 0-29 at 0.95 and 0.99) half missed the target as often
    #: (58 runs of 270 against 57, the nearby world ``cheap-95=0.93`` included) and saved 4-5
    #: points less at 0.95 on the synthetic sets.  ``None``: exploration is not budgeted from
    #: the slack
    explore_slack_share: float | None = 0.2
    #: the slack is at most the fleet plan's *headroom*: the quality ratio its price-0 plan
    #: (every request's best estimate) delivers above the target against the best estimated
    #: arm, the surplus or deficit so far paced out like the plan's.  At a strict target the
    #: greedy picks are already the best estimates and what exploration has spent is gone from
    #: the slack: behind the target, the budget shrinks to the floor, first looks and
    #: identification (``False``: ``1 - target`` however much of it was spent)
    slack_from_headroom: bool = True
    #: the slack budget goes first to the arms likeliest to beat the greedy one per unit of
    #: quality they are expected to give up, each at its whole rate while the budget lasts
    #: (``False``: every arm expected to lose quality is scaled down alike, which spreads a 1 %
    #: slack too thin over many arms to tell any of them apart)
    slack_to_likely_better: bool = True
    #: an arm's first outcomes on a task are exempt from that budget
    first_look: int = 3
    #: a prior fitted across the family's task types (empirical Bayes; its strength is not
    #: ``default_prior_strength``) counts its pseudo-observations as looks: sibling task types
    #: already tell what exploring the arm gives up (``False``: only the arm's own outcomes)
    first_look_counts_prior: bool = True
    #: with a fleet target: those first looks are exempt only as far as their quality cost --
    #: the greedy estimate less the arm's estimate (its prior, before the first pull) lowered by
    #: this many standard deviations -- fits the slack allowance per request; beyond it those
    #: of arms that cannot be the fleet's best one are scaled down alike (see
    #: :mod:`.first_looks`).  A strict target does not pay three looks of every weak arm on
    #: every task type (``None``: always exempt)
    first_look_slack_z: float | None = 0.0
    #: with a fleet target: an arm cheaper than the greedy one whose chance of reaching
    #: ``target x`` the task's best estimate lies between this risk and one minus it is
    #: *undecided*; undecided arms share the slack budget and are sampled until the test
    #: decides (``None``: no such tests, such arms are left to Thompson exploration)
    threshold_test_risk: float | None = 0.05
    #: the threshold test is anytime-valid: it decides only when a normal-mixture confidence
    #: sequence (mixing over this many pseudo-observations) leaves the bar on one side, so the
    #: stated risk holds however often the test is looked at -- the test is looked at on every
    #: request, and the fixed-sample rule rejects an arm whose first outcomes were unlucky far
    #: more often than the stated risk (``None``: the fixed-sample rule)
    threshold_test_mixture: float | None = 10.0

    # --- cost ---------------------------------------------------------------------------------
    #: an arm never called and without a list price is priced as the task's dearest arm
    #: (``False``: as free)
    price_unseen_as_dearest: bool = True

    # --- quality posteriors (empirical Bayes) ---------------------------------------------
    #: a posterior's per-observation variance includes the distance between the data's mean
    #: and the prior's (the normal-inverse-gamma update; for 0/1 outcomes the Beta posterior's
    #: variance): without it an arm whose first three outcomes failed against a prior of 0.8
    #: read 0.32 +- 0.10 instead of +- 0.19, and the best model of a task type could stay
    #: written off (``False``: the data's and the prior's spread alone)
    posterior_between_variance: bool = True
    prior_strength_min: float = 1.0
    prior_strength_max: float = 100.0
    default_prior_strength: float = 2.0
    #: task types with data needed before priors are pooled across a family
    eb_min_tasks: int = 5
    #: a prior pooled from fewer task types than that leaves the task type's own outcomes
    #: out (``False``: they are counted in the prior and again in the posterior)
    prior_leaves_task_out: bool = True
    #: such a pooled prior takes each task type's difficulty out of the arm's outcomes there
    #: (a two-way task + arm fit of the family, :mod:`.difficulty`): an arm tried on the hard
    #: task types and one tried on the easy ones are compared on the task types they share
    #: (``False``: each arm's plain mean over the task types it happened to serve)
    prior_adjusts_difficulty: bool = True

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
    #: Page-Hinkley settings (standard-deviation units): with ``drift_forgetting = 1`` the
    #: average run length between false alarms is ~10^5 values of a stationary stream (about
    #: one arm in ten raises one over 10,000 outcomes) and a drop of 0.9 to 0.3 is found in ~20
    drift_delta: float = 0.1
    drift_threshold: float = 40.0
    drift_warmup: int = 30
    #: forgetting factor of the Page-Hinkley sums (1: Page's test; river's default 1 - 1e-4
    #: fades them, and seven arms in ten raise a false alarm over 10,000 stationary outcomes)
    drift_forgetting: float = 1.0
    #: the quality monitor standardises each outcome with the Bernoulli standard deviation
    #: ``sqrt(p (1 - p))`` of the arm's current quality estimate ``p``, the largest a quality in
    #: [0, 1] with that mean can have (``False``: with the deviation of its first
    #: ``drift_warmup`` outcomes, frozen -- they are selection-biased: an arm is pulled while
    #: it looks good, so its first outcomes are luckier and less spread than its later ones,
    #: and ordinary outcomes later read as a drift)
    quality_drift_bernoulli_scale: bool = True
    #: the log-latency monitor keeps learning its scale from every latency since its (re)start
    #: (``DriftMonitor(running_scale=True)``; ``False``: the deviation of its first
    #: ``drift_warmup`` latencies, frozen -- 30 values misjudge it by ~13 %, and an arm whose
    #: first latencies came out tight raised false latency drifts on a stationary stream)
    latency_drift_running_scale: bool = True
    #: the log-cost residual ``log(cost / expected)`` is watched by a CUSUM on its sequential
    #: ranks (``RankDriftMonitor``: its false-alarm rate does not depend on the residual's skew
    #: or scale; ``False``: Page-Hinkley standardised by the deviation of the first
    #: ``drift_warmup`` residuals, frozen -- taken while the cost model is still learning, too
    #: wide or too narrow for the tails of later costs: on four cost streams drawn like the
    #: demo's and a heavier-tailed one, 20 runs of 10,000 stationary calls each, it raised
    #: false alarms in 29 runs of 100, the ranks in none; ``bench/drift.py``)
    cost_drift_ranks: bool = True
    #: with ``cost_drift_ranks``: the weight ``w`` of the cost model's level kept as it was
    #: when the detector settled (its means of input tokens and cost, with the arm's current
    #: slope: ``CostLevel``, kept until the next alarm) in the residual's reference
    #: ``frozen ** w * expected ** (1 - w)`` (0: the learning model alone, a running mean that
    #: takes in half of a rise within ~300 calls, so the residual's shift fades before the
    #: ranks have the evidence; 1: the frozen level alone, which raised a cost alarm in one
    #: backtest replay of 150, its residual drifting with the prompts the router chose for an
    #: arm; 0.5 takes in half as much of either; ``bench/drift.py``)
    cost_drift_level_weight: float = 0.5
    #: pseudo-observations kept (and max prior strength) after a quality drift
    drift_keep: float = 5.0
    #: weight of the exponentially weighted "recent" quality mean used after a drift
    recent_alpha: float = 0.05
    #: exploration floor right after a drift, for ``drift_explore_events`` updates of the task
    drift_explore_floor: float = 0.2
    drift_explore_events: int = 100
    #: with a fleet target and ``explore_slack_share``: the floor after a drift is at most what
    #: the slack budget pays for at the non-greedy arms' mean expected quality loss (``False``:
    #: ``drift_explore_floor`` whatever the target leaves; 20 % of the traffic on arms 25 % worse
    #: spends five times the slack of a 0.99 target)
    drift_explore_from_slack: bool = True
    #: drift events kept for :meth:`RoutingPolicy.drain_drift_events` (the oldest are dropped)
    drift_queue_max: int = 100

    # --- latency / misc ---------------------------------------------------------------------
    latency_window: int = 256
    min_latency_obs: int = 20
    #: seed of the internal RNG (used when ``recommend`` gets no ``rng``)
    seed: int = 0


def objective_for(objectives: Mapping[str, Objective], task_type: str) -> Objective:
    """The objective of a task type: its own, else its family's, else ``"*"``, else none."""
    obj = objectives.get(task_type)
    if obj is None:
        obj = objectives.get(family_of(task_type))
        if obj is None:
            obj = objectives.get("*")
    return obj or Objective()


#: knobs added after checkpoints were first written, at the values that keep a restored
#: policy's behaviour: a checkpoint without them continues the method it was started with
LEGACY_SETTINGS: dict[str, object] = {
    "explore_slack_share": None,
    "price_unseen_as_dearest": False,
    "threshold_test_risk": None,
    "threshold_test_mixture": None,
    "first_look_counts_prior": False,
    "slack_to_likely_better": False,
    "prior_leaves_task_out": False,
    "prior_adjusts_difficulty": False,
    "aim_margin_of_reference": False,
    "quality_drift_bernoulli_scale": False,
    "latency_drift_running_scale": False,
    "cost_drift_ranks": False,
    "cost_drift_level_weight": 0.0,
    "drift_forgetting": 1.0 - 1e-4,
    "drift_explore_from_slack": False,
    "identify_beyond_slack": False,
    "identify_dearer_candidates": False,
    "slack_from_headroom": False,
    "first_look_slack_z": None,
    "switch_risk_z": None,
    "posterior_between_variance": False,
    "reference_lower_bound_z": None,
}
