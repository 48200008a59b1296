"""False quality-drift alarms on stationary outcomes (issue 15, step 2, fourth pass).

An arm is pulled while it looks good, so the first outcomes its quality monitor sees are luckier
and less spread than the later ones.  Frozen on those, the monitor's scale made ordinary outcomes
read as a drop; the policy then shrank the arm's posterior and boosted exploration, which a 1 %
slack cannot pay for.  River's default forgetting factor made it worse on long streams.  The
monitor now standardises each outcome with the Bernoulli standard deviation of the arm's current
estimate and runs Page's test without forgetting; a real drop is found as fast as before.
"""

from __future__ import annotations

import math
import random
import statistics

from finops.optimizer.domain.arms import RIVER_FORGETTING, DriftMonitor, QualityPosterior
from finops.optimizer.domain.policy import PolicyConfig, RoutingPolicy

#: the monitor before (warm-up scale, river's forgetting) and after (Bernoulli scale, Page's test)
BEFORE = {"bernoulli": False, "forgetting": RIVER_FORGETTING}
AFTER = {"bernoulli": True, "forgetting": 1.0}
STREAMS = 20


def _alarms(stream: list[float], bernoulli: bool, forgetting: float) -> list[int]:
    """Where the monitor alarms; its scale, if Bernoulli, from the arm's posterior mean before
    each outcome (the default prior: 1/2, two pseudo-observations), as the policy does."""
    monitor, posterior, out = DriftMonitor(forgetting=forgetting), QualityPosterior(), []
    for i, q in enumerate(stream):
        p = posterior.mean(0.5, 2.0)
        if monitor.update(q, math.sqrt(p * (1.0 - p)) if bernoulli else None):
            out.append(i)
        posterior.add(q)
    return out


def _outcomes(rng: random.Random, p: float, n: int) -> list[float]:
    return [float(rng.random() < p) for _ in range(n)]


def _lucky_start(seed: int) -> list[float]:
    """27 of its first 30 right (why it kept being pulled), then 2,000 outcomes at 0.76."""
    rng = random.Random(seed)
    start = [1.0] * 27 + [0.0] * 3
    rng.shuffle(start)
    return start + _outcomes(rng, 0.76, 2000)


def _arms_alarmed(streams: list[list[float]], monitor: dict) -> int:
    return sum(bool(_alarms(s, **monitor)) for s in streams)


def test_a_lucky_start_no_longer_reads_as_a_drop_later():
    streams = [_lucky_start(seed) for seed in range(STREAMS)]
    before, after = _arms_alarmed(streams, BEFORE), _arms_alarmed(streams, AFTER)
    assert before >= 0.6 * STREAMS  # 14 of 20: the frozen scale of the lucky start
    assert after <= 0.15 * STREAMS  # 2 of 20
    assert after < before / 4


def test_pages_test_raises_a_third_as_many_false_alarms_over_ten_thousand_outcomes():
    streams = [_outcomes(random.Random(seed), 0.76, 10_000) for seed in range(STREAMS)]
    faded = _arms_alarmed(streams, {"bernoulli": True, "forgetting": RIVER_FORGETTING})
    page = _arms_alarmed(streams, AFTER)
    assert faded >= 0.6 * STREAMS  # river's forgetting: the sums stop drifting from the bar
    assert page <= 0.3 * STREAMS  # the average run length is ~10^5 outcomes
    assert page * 3 <= faded


def _delays(before: float, after: float, monitor: dict) -> list[int]:
    """Outcomes after a change of the arm's quality until the alarm (1,000: none)."""
    out = []
    for seed in range(STREAMS):
        rng = random.Random(1000 + seed)
        stream = _outcomes(rng, before, 500) + _outcomes(rng, after, 1000)
        found = [i - 500 for i in _alarms(stream, **monitor) if i >= 500]
        out.append(found[0] if found else 1000)
    return out


def test_a_real_drop_is_found_as_fast_as_before():
    # 0.9 -> 0.3: about 20 outcomes either way (19.5 / 18 median over 40 seeds)
    big_before, big_after = _delays(0.9, 0.3, BEFORE), _delays(0.9, 0.3, AFTER)
    assert statistics.median(big_after) <= 30 and max(big_after) <= 60
    assert statistics.median(big_after) <= statistics.median(big_before) + 5
    # 0.8 -> 0.6: about 100 outcomes either way
    small_before, small_after = _delays(0.8, 0.6, BEFORE), _delays(0.8, 0.6, AFTER)
    assert statistics.median(small_after) <= 150 and max(small_after) < 1000
    assert statistics.median(small_after) <= statistics.median(small_before) + 20


def test_the_policy_raises_no_quality_drift_on_a_stationary_arm_with_a_lucky_start():
    def quality_drifts(config: PolicyConfig) -> int:
        policy = RoutingPolicy(config, default_arms=["only|p|c"])
        events = []
        for q in _lucky_start(3):
            events += policy.update("qa", "only|p|c", None, q, 1e-3)
        return sum(e["metric"] == "quality" for e in events)

    legacy = PolicyConfig(quality_drift_bernoulli_scale=False, drift_forgetting=RIVER_FORGETTING)
    assert quality_drifts(legacy) >= 1
    assert quality_drifts(PolicyConfig()) == 0
