"""Unit tests of the online routing policy (finops.optimizer.domain.policy)."""

from __future__ import annotations

import json
import random

import pytest

from finops.optimizer.domain.features import prompt_features
from finops.optimizer.domain.policy import Objective, PolicyConfig, RoutingPolicy, family_of

BIG = "big-model|prov|default"
SMALL = "small-model|prov|default"
MID = "mid-model|prov|default"


def _simulate(policy, truth, n, rng, task="qa", features=None, latency=None, start=0):
    """Run ``n`` bandit rounds; ``truth[arm] = (p_success, cost)`` (may be a callable of t)."""
    picks = []
    for t in range(start, start + n):
        tr = truth(t) if callable(truth) else truth
        d = policy.recommend(task, features, rng)
        p, cost = tr[d.arm]
        q = float(rng.random() < p)
        lat = latency[d.arm] if latency else None
        policy.update(task, d.arm, features, q, cost, lat)
        picks.append(d.arm)
    return picks


def test_family_of():
    assert family_of("mmlu/anatomy") == "mmlu"
    assert family_of("gsm8k") == "gsm8k"


def test_moves_to_cheap_arm_when_good_enough():
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.95, seed=1), default_arms=[BIG, SMALL]
    )
    rng = random.Random(1)
    truth = {BIG: (0.90, 1e-2), SMALL: (0.89, 1e-4)}
    picks = _simulate(policy, truth, 1500, rng)
    late = picks[-300:]
    assert late.count(SMALL) / len(late) >= 0.8
    d = policy.recommend("qa", None, random.Random(5))
    assert d.arm == SMALL or d.explored
    summary = policy.arm_summary("qa")
    assert summary[SMALL]["quality"] == pytest.approx(0.89, abs=0.05)
    assert summary[SMALL]["cost_usd"] == pytest.approx(1e-4, rel=1e-6)


def test_keeps_expensive_arm_when_cheap_arm_is_much_worse():
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.95, seed=2), default_arms=[BIG, SMALL]
    )
    rng = random.Random(2)
    truth = {BIG: (0.90, 1e-2), SMALL: (0.50, 1e-4)}
    picks = _simulate(policy, truth, 1500, rng)
    late = picks[-500:]
    # at most ~10% of the traffic can go to an arm 44% worse while keeping 95% of the quality
    assert late.count(BIG) / len(late) >= 0.8
    status = policy.status()
    assert status["reference_arm"] == BIG
    assert status["estimated_quality_ratio"] >= 0.93


def test_fleet_target_spends_quality_where_saving_is_largest():
    """Two task types: the cheap arm is nearly as good on 'easy', much worse on 'hard'."""
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.95, seed=3), default_arms=[BIG, SMALL]
    )
    rng = random.Random(3)
    truth = {
        "easy": {BIG: (0.95, 1e-2), SMALL: (0.92, 1e-4)},
        "hard": {BIG: (0.80, 1e-2), SMALL: (0.40, 1e-4)},
    }
    counts = {("easy", BIG): 0, ("easy", SMALL): 0, ("hard", BIG): 0, ("hard", SMALL): 0}
    for t in range(4000):
        task = "easy" if rng.random() < 0.5 else "hard"
        d = policy.recommend(task, None, rng)
        p, c = truth[task][d.arm]
        policy.update(task, d.arm, None, float(rng.random() < p), c)
        if t >= 2000:
            counts[(task, d.arm)] += 1
    easy_small = counts[("easy", SMALL)] / (counts[("easy", SMALL)] + counts[("easy", BIG)])
    hard_small = counts[("hard", SMALL)] / (counts[("hard", SMALL)] + counts[("hard", BIG)])
    assert easy_small >= 0.85
    assert hard_small <= 0.2
    assert policy.mu > 0


def test_three_arms_picks_middle_arm():
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.95, seed=4), default_arms=[BIG, MID, SMALL]
    )
    rng = random.Random(4)
    truth = {BIG: (0.92, 1e-2), MID: (0.91, 1e-3), SMALL: (0.40, 1e-4)}
    picks = _simulate(policy, truth, 2000, rng)
    late = picks[-500:]
    assert late.count(MID) / len(late) >= 0.75
    assert late.count(BIG) / len(late) <= 0.1
    # MID alone keeps ~99% of BIG's quality; the rest of the 5% budget may buy a few SMALL picks
    assert late.count(SMALL) / len(late) <= 0.2


def test_propensities_are_a_distribution_with_support_on_every_arm():
    cfg = PolicyConfig(fleet_quality_target=0.95, seed=5)
    policy = RoutingPolicy(cfg, default_arms=[BIG, MID, SMALL])
    rng = random.Random(5)
    truth = {BIG: (0.9, 1e-2), MID: (0.85, 1e-3), SMALL: (0.5, 1e-4)}
    _simulate(policy, truth, 300, rng)
    for _ in range(50):
        d = policy.recommend("qa", None, rng)
        probs = {a["arm"]: a["probability"] for a in d.alternatives}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
        assert d.propensity == probs[d.arm]
        assert min(probs.values()) >= cfg.explore_floor / 2 - 1e-12
        assert set(probs) == {BIG, MID, SMALL}


def test_objectives_floor_wtp_and_latency():
    rng = random.Random(6)
    truth = {BIG: (0.95, 1e-2), MID: (0.80, 1e-3), SMALL: (0.60, 1e-4)}
    latency = {BIG: 2000.0, MID: 300.0, SMALL: 100.0}

    # cheapest arm meeting an absolute floor of 0.7
    floor = RoutingPolicy(
        objectives={"*": Objective(quality_floor=0.7)}, default_arms=[BIG, MID, SMALL]
    )
    picks = _simulate(floor, truth, 800, rng, latency=latency)
    assert picks[-200:].count(MID) / 200 >= 0.85

    # willingness to pay 30 quality points per USD: BIG 0.95-0.30=0.65, MID 0.80-0.03=0.77,
    # SMALL 0.60-0.003 -> MID
    wtp = RoutingPolicy(
        objectives={"qa": Objective(wtp_per_usd=30.0)}, default_arms=[BIG, MID, SMALL]
    )
    picks = _simulate(wtp, truth, 800, rng, latency=latency)
    assert picks[-200:].count(MID) / 200 >= 0.85

    # best quality under a p95 latency ceiling of 1 s: BIG is too slow -> MID
    lat = RoutingPolicy(
        objectives={"qa": Objective(latency_p95_ms=1000.0)}, default_arms=[BIG, MID, SMALL]
    )
    picks = _simulate(lat, truth, 800, rng, latency=latency)
    assert picks[-200:].count(MID) / 200 >= 0.85
    d = lat.recommend("qa", None, rng)
    alt = {a["arm"]: a for a in d.alternatives}
    assert alt[BIG]["p95_latency_ms"] == pytest.approx(2000.0)
    assert alt[BIG]["feasible"] is False


def test_drift_moves_back_and_emits_signal():
    policy = RoutingPolicy(
        objectives={"*": Objective(relative_quality_floor=0.95)},
        default_arms=[BIG, SMALL],
        config=PolicyConfig(seed=7),
    )
    rng = random.Random(7)
    before = {BIG: (0.90, 1e-2), SMALL: (0.90, 1e-4)}
    after = {BIG: (0.90, 1e-2), SMALL: (0.30, 1e-4)}
    picks = _simulate(policy, before, 1000, rng)
    assert picks[-200:].count(SMALL) / 200 >= 0.9
    assert policy.drain_drift_events() == []

    picks = _simulate(policy, after, 300, rng, start=1000)
    events = policy.drain_drift_events()
    quality_events = [e for e in events if e["metric"] == "quality" and e["arm"] == SMALL]
    assert quality_events, events
    ev = quality_events[0]
    assert ev["direction"] == "decrease"
    assert ev["task_type"] == "qa"
    assert ev["after"] < ev["before"]
    assert ev["update_index"] - 1000 <= 80  # detected within 80 events of the change
    # bounded recovery: after the alarm the big arm serves the traffic again
    switch = next(i for i in range(len(picks)) if picks[i : i + 20].count(BIG) >= 18)
    assert switch <= 120
    assert picks[-100:].count(BIG) / 100 >= 0.9
    assert policy.drain_drift_events() == []  # drained


def test_the_drift_event_queue_keeps_only_the_newest_events():
    policy = RoutingPolicy(PolicyConfig(drift_queue_max=3), default_arms=[SMALL])
    raised = []
    for task in [f"task-{i}" for i in range(6)]:  # every task's cost jumps a thousandfold
        for t in range(200):
            raised += policy.update(task, SMALL, None, 1.0, 1e-4 if t < 100 else 1e-1, 100.0)
    assert len(raised) >= 6
    assert policy.to_state()["drift_events"] == raised[-3:]
    restored = RoutingPolicy.from_state(json.loads(json.dumps(policy.to_state())))
    assert restored.drain_drift_events() == raised[-3:]
    assert policy.drain_drift_events() == raised[-3:]
    assert policy.drain_drift_events() == []


def test_drift_recovery_under_fleet_target():
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.95, seed=8), default_arms=[BIG, SMALL]
    )
    rng = random.Random(8)
    before = {BIG: (0.90, 1e-2), SMALL: (0.90, 1e-4)}
    after = {BIG: (0.90, 1e-2), SMALL: (0.30, 1e-4)}
    _simulate(policy, before, 1500, rng)
    picks = _simulate(policy, after, 600, rng, start=1500)
    assert any(e["metric"] == "quality" for e in policy.drain_drift_events())
    assert picks[-200:].count(BIG) / 200 >= 0.85


def test_state_round_trip_gives_identical_decisions():
    cfg = PolicyConfig(fleet_quality_target=0.95, seed=9)
    policy = RoutingPolicy(cfg, default_arms=[BIG, MID, SMALL])
    rng = random.Random(9)
    prompts = [f"Question {i}: what is {i} * {i + 3}? Explain." * (1 + i % 3) for i in range(50)]
    truth = {BIG: (0.9, 1e-2), MID: (0.85, 1e-3), SMALL: (0.6, 1e-4)}
    for t in range(700):
        task = f"fam/t{t % 3}"
        f = prompt_features(prompts[t % 50], 20 + t % 50)
        d = policy.recommend(task, f, rng)
        p, c = truth[d.arm]
        policy.update(task, d.arm, f, float(rng.random() < p), c * (1 + t % 5), 100.0 + t % 7)
    state = policy.to_state()
    blob = json.dumps(state)  # JSON-able
    clone = RoutingPolicy.from_state(json.loads(blob))
    assert json.dumps(clone.to_state()) == blob

    r1, r2, sim = random.Random(42), random.Random(42), random.Random(43)
    for t in range(400):  # crosses several re-plans
        task = f"fam/t{t % 3}"
        f = prompt_features(prompts[(t * 7) % 50], 30 + t % 40)
        d1 = policy.recommend(task, f, r1)
        d2 = clone.recommend(task, f, r2)
        assert d1 == d2
        p, c = truth[d1.arm]
        q = float(sim.random() < p)
        e1 = policy.update(task, d1.arm, f, q, c, 120.0)
        e2 = clone.update(task, d2.arm, f, q, c, 120.0)
        assert e1 == e2
    assert policy.status() == clone.status()
    # internal RNG state is part of the snapshot too
    assert policy.recommend("fam/t0") == clone.recommend("fam/t0")


def test_contextual_model_routes_per_prompt():
    """Within one task type, the cheap arm fails on long prompts only."""
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.95, seed=10), default_arms=[BIG, SMALL]
    )
    rng = random.Random(10)
    short = "Add two numbers. " * 2
    long_ = "Consider the following long multi-step problem with many details. " * 30
    f_short = prompt_features(short)
    f_long = prompt_features(long_)
    for _ in range(3000):
        is_long = rng.random() < 0.5
        f = f_long if is_long else f_short
        d = policy.recommend("math", f, rng)
        if d.arm == BIG:
            p, c = 0.9, 1e-2
        else:
            p, c = (0.2 if is_long else 0.9), 1e-4
        policy.update("math", d.arm, f, float(rng.random() < p), c)
    d_short = policy.recommend("math", f_short, random.Random(0))
    d_long = policy.recommend("math", f_long, random.Random(0))
    q_short = {a["arm"]: a["expected_quality"] for a in d_short.alternatives}
    q_long = {a["arm"]: a["expected_quality"] for a in d_long.alternatives}
    assert q_short[SMALL] - q_long[SMALL] > 0.3
    assert max(d_short.alternatives, key=lambda a: a["probability"])["arm"] == SMALL
    assert max(d_long.alternatives, key=lambda a: a["probability"])["arm"] == BIG


def test_unknown_task_uses_default_arms_and_candidates():
    policy = RoutingPolicy(default_arms=[BIG, SMALL])
    d = policy.recommend("brand-new")
    assert d.arm in (BIG, SMALL)
    assert 0 < d.propensity <= 1
    d = policy.recommend("brand-new", candidates=[MID])
    assert d.arm == MID and d.propensity == 1.0
    with pytest.raises(ValueError):
        RoutingPolicy().recommend("no-arms")


def test_ten_arms_explore_within_what_the_target_leaves():
    # one strong expensive arm, one nearly-as-good cheap arm and eight weak ones on six task
    # types: trying every weak arm 30 times on every task type would cost more quality than
    # the 5 % the target leaves
    strong, cheap = "strong|prov|default", "cheap|prov|default"
    weak = [f"weak-{i}|prov|default" for i in range(8)]
    truth = {strong: (0.92, 2e-2), cheap: (0.90, 1e-3), **{w: (0.35, 5e-4) for w in weak}}
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.95, seed=3), default_arms=[strong, cheap, *weak]
    )
    rng = random.Random(3)
    tasks = [f"fam{t}" for t in range(6)]
    picks, quality = [], 0.0
    for i in range(3000):
        task = tasks[i % len(tasks)]
        d = policy.recommend(task, None, rng)
        p, cost = truth[d.arm]
        q = float(rng.random() < p)
        policy.update(task, d.arm, None, q, cost)
        picks.append(d.arm)
        quality += q
    weak_share = sum(picks.count(w) for w in weak) / len(picks)
    assert weak_share < 0.08, weak_share
    assert quality / len(picks) / 0.92 >= 0.93
    assert picks[-600:].count(cheap) / 600 >= 0.5


def test_one_bad_outcome_does_not_make_an_arm_certainly_useless():
    policy = RoutingPolicy(PolicyConfig(seed=0), default_arms=[BIG, SMALL])
    policy.update("first", SMALL, None, 0.0, 1e-4)
    for _ in range(20):
        policy.update("first", BIG, None, 1.0, 1e-2)
    policy.replan()
    policy.recommend("second", None, random.Random(0))  # a new task type: priors only
    small = policy.arm_summary("second")[SMALL]
    assert small["quality"] > 0.2
    assert small["quality_sd"] > 0.1


def test_reference_arm_is_audited_where_the_policy_left_it():
    # the cheap arm serves nearly everything; the reference arm's estimate on the big task
    # type would rest on a handful of observations without audits
    policy = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.9, seed=4), default_arms=[BIG, SMALL]
    )
    rng = random.Random(4)
    truth = {BIG: (0.90, 1e-2), SMALL: (0.88, 1e-4)}
    _simulate(policy, truth, 3000, rng, task="big")
    _simulate(policy, truth, 300, rng, task="small")
    status = policy.status()
    assert status["reference_arm"] == BIG
    big = policy.arm_summary("big")[BIG]
    assert big["observations"] >= 80  # 92 since the threshold tests of #15 (above 100 before)
    assert big["quality"] == pytest.approx(0.90, abs=0.05)


def _expected_exploration_loss(decision) -> float:
    """Quality the non-greedy picks of one decision are expected to give up against the
    most probable (greedy) arm."""
    alts = decision.alternatives
    greedy = max(alts, key=lambda a: a["probability"])
    return sum(
        a["probability"] * (greedy["expected_quality"] - a["expected_quality"])
        for a in alts
        if a is not greedy and a["expected_quality"] < greedy["expected_quality"]
    )


def test_a_strict_target_caps_the_exploration_loss_and_tries_weak_arms_less():
    strong, cheap = "strong|prov|default", "cheap|prov|default"
    weak = [f"weak-{i}|prov|default" for i in range(6)]
    truth = {strong: (0.9, 2e-2), cheap: (0.8, 1e-3), **{w: (0.3, 5e-4) for w in weak}}
    config = PolicyConfig(fleet_quality_target=0.99, seed=2)
    policy = RoutingPolicy(config, default_arms=[strong, cheap, *weak])
    rng = random.Random(2)
    _simulate(policy, truth, 600, rng)
    decision = policy.recommend("qa", None, rng)
    greedy_quality = max(decision.alternatives, key=lambda a: a["probability"])
    # what the exploration floor alone costs: explore_floor / (arms - 1) on each lossy arm
    losses = [
        greedy_quality["expected_quality"] - a["expected_quality"]
        for a in decision.alternatives
        if a["expected_quality"] < greedy_quality["expected_quality"]
    ]
    floor = config.explore_floor / 7 * sum(losses)
    allowance = 0.5 * (1 - 0.99) * greedy_quality["expected_quality"]
    # an arm scaled down by the budget keeps the floor: the two add up at most
    assert _expected_exploration_loss(decision) <= allowance + floor + 1e-9
    # without the budget the same policy explores more
    unbudgeted = RoutingPolicy(
        PolicyConfig(fleet_quality_target=0.99, seed=2, explore_slack_share=None),
        default_arms=[strong, cheap, *weak],
    )
    rng = random.Random(2)
    picks = _simulate(unbudgeted, truth, 600, rng)
    budgeted_picks = _simulate(
        RoutingPolicy(config, default_arms=[strong, cheap, *weak]), truth, 600, random.Random(2)
    )
    assert sum(p in weak for p in budgeted_picks) < sum(p in weak for p in picks)


def test_an_arm_never_called_is_priced_as_the_dearest_not_as_free():
    policy = RoutingPolicy(PolicyConfig(seed=0), default_arms=[BIG, SMALL, "new|p|c"])
    policy.update("qa", BIG, None, 1.0, 1e-2)
    policy.update("qa", SMALL, None, 1.0, 1e-4)
    summary = policy.arm_summary("qa")
    assert summary["new|p|c"]["cost_usd"] == pytest.approx(1e-2)
    legacy = RoutingPolicy(
        PolicyConfig(seed=0, price_unseen_as_dearest=False), default_arms=[BIG, "new|p|c"]
    )
    legacy.update("qa", BIG, None, 1.0, 1e-2)
    assert legacy.arm_summary("qa")["new|p|c"]["cost_usd"] == 0.0


def test_a_prior_pooled_from_sibling_task_types_counts_as_first_looks():
    # twelve task types of one family, 20 requests each: once the family's prior tells the
    # small arm is weaker, a 1 % target does not give it three free looks on every new type
    truth = {BIG: (0.9, 1e-2), SMALL: (0.75, 1e-4)}

    def small_picks_on_later_task_types(counts_prior: bool) -> int:
        config = PolicyConfig(
            fleet_quality_target=0.99,
            seed=3,
            first_look_counts_prior=counts_prior,
            # looks exempt whatever they cost: charged to the slack, the small arm's first
            # looks are few with either setting (test_policy_first_looks.py)
            first_look_slack_z=None,
            # plain estimates: charged its risk against the reference arm, the small arm is
            # rarely the greedy pick with either setting, and the looks are what is compared
            switch_risk_z=None,
        )
        policy = RoutingPolicy(config, default_arms=[BIG, SMALL])
        rng = random.Random(3)
        picks = []
        for i in range(12):
            picks += _simulate(policy, truth, 20, rng, task=f"fam/t{i}")
        prior_strength = policy._tasks["fam/t11"].arms[SMALL].effective_prior()[1]
        assert prior_strength > config.default_prior_strength  # pooled across the family
        return picks[120:].count(SMALL)

    pooled, own = small_picks_on_later_task_types(True), small_picks_on_later_task_types(False)
    assert pooled <= 5
    assert own >= 10
    assert own >= 4 * pooled
