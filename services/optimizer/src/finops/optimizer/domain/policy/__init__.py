"""Online cost/quality routing policy (one implementation for the live service and the backtest).

Where things are
----------------
=================  ===========================================================================
``routing``        :class:`RoutingPolicy`, the facade: register arms, recommend, update, replan
``config``         :class:`Objective` (what the operator asks) and :class:`PolicyConfig` (knobs)
``keys``           :func:`family_of` and the one key format of per-(scope, arm) tables
``task``           per-task-type state (arms' statistics, exploration counters, feature means)
``estimates``      per-request estimates of every arm (:class:`~.estimates.Estimates`)
``costs``          expected cost: per-task, pooled per arm, or an operator hint
``scoring``        price of cost, the quality floor (written once), feasibility, scores
``exploration``    choice probabilities: Thompson, caps, identification, audits, fair trials
``choosing``       one request's choice: probabilities at the plan's price(s), mixed; the draw
``mechanism``      what made an explored pick (:class:`Mechanism`), also where two prices mix
``slack``          the exploration budget from the quality slack, shared among lossy arms
``decision``       :class:`Decision` and its reason
``learning``       learning from one outcome: quality (contextual), cost, latency, drift
``priors``         empirical-Bayes priors of the quality posteriors
``difficulty``     task difficulty in a family (two-way fit), taken out of pooled priors
``planner``        the fleet planner: reference totals, pacing, shadow price
``dual_solve``     the planner's dual solve over the cost/quality hull of a request window
``persistence``    the checkpoint format (``to_state`` / ``from_state``)
=================  ===========================================================================

Model
-----
For every task type the policy routes a request to one *arm* (``"model|provider|config"``).  For
each ``(task_type, arm)`` it keeps (see :mod:`..arms`)

* a quality posterior (Normal approximation of a Beta) with an empirical-Bayes prior: the arm's
  typical quality over the task *family* (``mmlu/anatomy`` belongs to ``mmlu``) shifted by the
  task's difficulty as seen by the *other* arms (a task that is hard for the cheap model is hard
  for the expensive one too),
* an expected-cost model (linear in the request's input tokens, slope pooled per arm),
* a latency window (mean and p95),
* Page-Hinkley drift monitors on quality and log-latency, a CUSUM on the sequential ranks
  of the log-cost residual.

With request features (:func:`..features.prompt_features`) a
:class:`..residual_quality.ResidualQualityModel` per ``(family, arm)`` -- river StandardScaler +
Bayesian linear regression with evidence-optimised prior, on features centred per task type --
predicts how this prompt deviates from the arm's task-level mean.  Its predictions are centred
per task (they rank prompts *within* a task) and scaled by a prequentially measured calibration
slope, so ``q_hat(x, a) = mean(task, a) + lam_a * (r_a(x) - rbar(task, a))``.

Decision rule
-------------
Among the arms meeting the operator's constraints for the scope (absolute or relative quality
floor, p95 latency ceiling) the *greedy* arm maximises::

    q_hat(x, a) - latency_weight * p95_a - price * cost_hat(x, a)

``price`` is, by objective: the operator's willingness to pay (quality per USD); ``+inf`` for
"cheapest arm meeting the floor"; ``0`` for "best quality"; or, with a fleet-wide quality
target, the learned *shadow price* ``mu`` of quality (see :mod:`.planner`).

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
small floor keeps every propensity positive (see :mod:`.exploration`).

With a fleet quality target, exploration is budgeted from the slack the target leaves: the
expected quality that non-greedy picks give up against the greedy arm is capped per request at
``explore_slack_share`` x ``(1 - target)`` x the greedy arm's quality (a 1 % target leaves 1 %
to lose; trying ten weak arms at a fixed rate would spend several times that), down to the
exploration floor.  Arms cheaper than the greedy one whose chance of reaching ``target`` x the
task's best estimate is *undecided* -- an anytime-valid test at the risk ``threshold_test_risk``
has not decided (``threshold_test_mixture``) -- are sampled, sharing that budget likeliest to
pass first, until the test decides: a near-threshold cheap arm (the whole
saving at a 0.95 target when it sits at 95 % of the best) is identified instead of being left
to one unlucky start.  When the exploration the arms want exceeds the budget, it goes first to
the arms likeliest to beat the greedy one per unit of quality they are expected to give up
(``slack_to_likely_better``).  An arm's first ``first_look`` outcomes on a task are exempt from the
budget, unless a prior pooled from the family's other task types already tells what trying it
gives up (``first_look_counts_prior``, see :func:`.slack.looks`).  An arm never called
and without a list price (``cost_hints``: the live engine prices catalog arms with genai-prices)
is priced as the task's dearest arm, not as free; one call tells its cost.

Priors pooled from a handful of identical outcomes are smoothed by ``default_prior_strength``
pseudo-observations, so that one wrong answer does not make an arm "certainly useless" everywhere;
a prior pooled from fewer than ``eb_min_tasks`` task types leaves the task type's own outcomes
out (``prior_leaves_task_out``): they are counted once, in the posterior.

At a strict target, where the plan already serves every request its best estimate (price 0),
arms that may beat the apparent best by more than the slack keep their identification rate
beyond that budget (``identify_beyond_slack``), and the budget is at most the plan's headroom
over the target, net of what was spent so far (``slack_from_headroom``).  At any price, arms
dearer than the fleet's reference arm that may still be the fleet's best one keep their
identification rate as far as a second allowance of that size pays for it
(``identify_dearer_candidates``): the plan never serves them for their price, and the budget goes
first to the arms likeliest to beat the greedy pick, a weaker reference arm itself.

Drift
-----
The quality monitor standardises each outcome with the Bernoulli standard deviation of the arm's
current estimate (``quality_drift_bernoulli_scale``; the first outcomes of an arm are
selection-biased), the latency monitor keeps learning its scale from every latency since its
(re)start (``latency_drift_running_scale``; the deviation of 30 values, frozen, is too rough:
an arm whose first latencies came out tight raised false drifts), the log-cost residual is
watched by a CUSUM on its sequential ranks (``cost_drift_ranks``; its false-alarm rate does not
depend on the residual's skew or scale), the residual taken against a reference halfway
(in log) between the learning cost model and its level kept as it was when that detector
settled (``cost_drift_level_weight``; the learning model alone takes in a rise before the
ranks have the evidence), and the Page-Hinkley monitors run Page's
test without forgetting (``drift_forgetting``).
On a detected change of an arm's quality its posterior is shrunk to a few pseudo-observations
centred on the recent (exponentially weighted) mean, its prior strength is capped, the task gets
an exploration boost (sized from the slack under a fleet target: ``drift_explore_from_slack``)
and a drift event is returned by :meth:`RoutingPolicy.update` and queued
for :meth:`RoutingPolicy.drain_drift_events` (the newest ``drift_queue_max`` only: a caller that
never drains must not grow the state without bound). Latency / cost drifts reset the latency
window / cost statistics and are reported the same way.

The whole state is plain data: :meth:`RoutingPolicy.to_state` returns a JSON-able dict and
:meth:`RoutingPolicy.from_state` restores a policy that makes identical decisions.
"""

from .config import Objective, PolicyConfig
from .decision import Decision
from .keys import family_of
from .mechanism import Mechanism
from .routing import RoutingPolicy

__all__ = ["Decision", "Mechanism", "Objective", "PolicyConfig", "RoutingPolicy", "family_of"]
