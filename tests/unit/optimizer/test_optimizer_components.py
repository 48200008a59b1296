"""Unit tests of the optimizer's building blocks (arms/, features.py, residual_quality.py) and
domain doctests."""

from __future__ import annotations

import json
import math
import random

import pytest

from finops.optimizer.domain.arm_identity import Arm
from finops.optimizer.domain.arms import (
    ArmStats,
    CostModel,
    DriftMonitor,
    LatencyWindow,
    QualityPosterior,
)
from finops.optimizer.domain.features import prompt_features
from finops.optimizer.domain.residual_quality import ResidualQualityModel


def test_arm_key_round_trip():
    arm = Arm("claude-3-haiku", "anthropic", "t0.2")
    assert arm.key == "claude-3-haiku|anthropic|t0.2"
    assert Arm.parse(arm.key) == arm
    assert Arm.parse("m|p") == Arm("m", "p", "default")


def test_quality_posterior_matches_beta():
    post = QualityPosterior()
    for q in [1, 1, 1, 0]:
        post.add(q)
    # Beta(1 + 3, 1 + 1): mean 4/6, variance ab / ((a+b)^2 (a+b+1)) with p0=0.5, m=2
    assert post.mean(0.5, 2.0) == pytest.approx(4 / 6)
    # data sum of squares 0.75, prior adds 2 pseudo-observations of variance 0.25, and the
    # distance of the data's mean 3/4 from the prior's 1/2: 4 x 2 / 6 x (1/4)^2
    between = 4 * 2 / 6 * 0.25**2
    assert post.variance(0.5, 2.0, 0.25) == pytest.approx((0.75 + 2 * 0.25 + between) / 6 / 7)
    a, b = 4.0, 2.0
    beta_var = a * b / ((a + b) ** 2 * (a + b + 1))
    assert post.variance(0.5, 2.0, 0.25) == pytest.approx(beta_var, rel=1e-12)
    # without the distance (checkpoints written before it): the spreads alone, less than Beta's
    assert post.variance(0.5, 2.0, 0.25, between=False) == pytest.approx((0.75 + 0.5) / 6 / 7)
    post.discount(keep=2.0, mean=0.25, var=0.1)
    assert post.n == 2.0 and post.mu == 0.25 and post.m2 == pytest.approx(0.2)


def test_cost_model_slope_and_mean():
    cm = CostModel()
    for tok in range(10, 110, 10):
        cm.add(tok, 2e-4 + 3e-6 * tok)
    assert cm.mean_cost == pytest.approx(2e-4 + 3e-6 * 55)
    assert cm.cxy / cm.cxx == pytest.approx(3e-6)


def test_latency_window_p95_and_recent():
    lw = LatencyWindow(size=50)
    for i in range(100):
        lw.add(float(i))
    assert len(lw) == 50
    assert lw.mean() == pytest.approx(74.5)
    assert lw.p95() == 97.0
    lw.keep_recent(5)
    assert sorted(lw.buf) == [95.0, 96.0, 97.0, 98.0, 99.0]
    clone = LatencyWindow.from_state(json.loads(json.dumps(lw.to_state())))
    assert clone.p95() == lw.p95() and clone.mean() == lw.mean()


def test_drift_monitor_no_false_alarm_then_detects_both_directions():
    rng = random.Random(0)
    mon = DriftMonitor()
    alarms = [i for i in range(5000) if mon.update(float(rng.random() < 0.8))]
    assert alarms == []  # stationary stream
    change = [i for i in range(400) if mon.update(float(rng.random() < 0.3))]
    assert change and change[0] < 60 and mon.last_direction == -1
    up = DriftMonitor()
    for _ in range(300):
        up.update(math.log(100.0 + rng.random()))
    hits = [i for i in range(300) if up.update(math.log(400.0 + rng.random()))]
    assert hits and hits[0] < 40 and up.last_direction == 1


def test_drift_monitor_state_round_trip():
    rng = random.Random(1)
    a = DriftMonitor()
    for _ in range(100):
        a.update(rng.random())
    b = DriftMonitor.from_state(json.loads(json.dumps(a.to_state())))
    stream = [rng.random() * (1 if i < 50 else 5) for i in range(200)]
    assert [a.update(x) for x in stream] == [b.update(x) for x in stream]


def test_arm_stats_state_round_trip():
    st = ArmStats()
    for i in range(40):
        st.quality.add(float(i % 3 != 0))
        st.cost.add(10 + i, 1e-4 * (10 + i))
        st.latency.add(100.0 + i)
        st.q_drift.update(float(i % 3 != 0))
    clone = ArmStats.from_state(json.loads(json.dumps(st.to_state())))
    assert clone.to_state() == st.to_state()
    assert clone.mean_quality() == st.mean_quality()


def test_prompt_features_values():
    f = prompt_features("John has 3 apples and buys 12 more for $1.50 each. How many?", 20)
    assert f["input_tokens"] == 20.0
    assert f["log_input_tokens"] == pytest.approx(math.log(21))
    assert f["log_numbers"] == pytest.approx(math.log(4))  # 3, 12, 1.50
    assert f["log_max_number"] == pytest.approx(math.log(13))
    assert f["has_currency"] == 1.0 and f["has_decimal"] == 1.0 and f["has_percent"] == 0.0
    assert f["questions"] == 1.0 and f["choices"] == 0.0
    empty = prompt_features(None)
    assert empty["input_tokens"] == 0.0 and empty["log_words"] == 0.0
    assert prompt_features("x" * 40)["input_tokens"] == 10.0  # ceil(chars / 4)


def test_residual_model_learns_signal_and_ignores_noise():
    rng = random.Random(3)
    model = ResidualQualityModel(warmup=20)
    noise = ResidualQualityModel(warmup=20)
    for _ in range(3000):
        x = {"length": rng.gauss(0, 1), "junk": rng.gauss(0, 1)}
        p = 0.8 if x["length"] < 0 else 0.5
        model.learn_one(x, float(rng.random() < p) - 0.65)
        noise.learn_one({"junk": x["junk"]}, float(rng.random() < 0.65) - 0.65)
        model.observe_calibration(0.0, 0.0)
    model.optimise_prior()
    noise.optimise_prior()
    assert model.predict_one({"length": -1.0, "junk": 0.0}) > 0.08
    assert model.predict_one({"length": 1.0, "junk": 0.0}) < -0.08
    assert abs(noise.predict_one({"junk": 2.0})) < 0.01
    assert noise.prior_variance_ < model.prior_variance_
    clone = ResidualQualityModel.from_state(json.loads(json.dumps(model.to_state())))
    x = {"length": 0.3, "junk": -1.2}
    assert clone.predict_one(x) == model.predict_one(x)


def test_residual_model_calibration_slope():
    m = ResidualQualityModel()
    rng = random.Random(4)
    for _ in range(2000):
        d = rng.gauss(0, 0.1)
        m.observe_calibration(d, 0.5 * d + rng.gauss(0, 0.05))
    assert m.calibration(prior_n=0.0) == pytest.approx(0.5, abs=0.05)
    assert m.calibration(prior_n=2000.0) == pytest.approx(0.25, abs=0.03)
    assert ResidualQualityModel().calibration() == 0.0
