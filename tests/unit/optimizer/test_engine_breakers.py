"""Open circuit breakers: the optimizer does not recommend the arm, and says so; half-open
arms get a few probing requests; with every breaker open it still answers."""

from __future__ import annotations

import random

from test_engine_promotion import call

from finops.common.circuits import CircuitState, CircuitStatus, CircuitTable
from finops.optimizer.domain.engine import OptimizerEngine


def trained() -> OptimizerEngine:
    engine = OptimizerEngine(seed=0)
    rng = random.Random(0)
    for _ in range(200):
        engine.observe(call("gpt-4o-mini", "summarize", min(1.0, rng.gauss(0.9, 0.05))))
        engine.observe(call("gpt-4o", "summarize", min(1.0, rng.gauss(0.9, 0.05))))
    return engine


def table(**states: CircuitStatus) -> CircuitTable:
    out = CircuitTable()
    for model, state in states.items():
        out.apply(
            CircuitState(
                "openai", model.replace("_", "-"), state, 1.0, 20, 20, 60.0, 0.0, 30.0, "t", 1.0
            )
        )
    return out


def picks(engine: OptimizerEngine, breakers: CircuitTable | None, n: int = 200) -> list[str]:
    return [
        engine.recommend("summarize", rng=random.Random(i), breakers=breakers).arm.model
        for i in range(n)
    ]


def test_the_cheap_arm_is_recommended_until_its_breaker_opens():
    engine = trained()
    assert picks(engine, None).count("gpt-4o-mini") > 150
    broken = table(gpt_4o_mini=CircuitStatus.OPEN)
    assert set(picks(engine, broken)) == {"gpt-4o"}
    rec = engine.recommend("summarize", rng=random.Random(1), breakers=broken).to_dict()
    assert rec["model"] == "gpt-4o"
    assert rec["skipped"] == [
        {
            "arm": "gpt-4o-mini|openai|default",
            "model": "gpt-4o-mini",
            "provider": "openai",
            "breaker": "open",
        }
    ]
    assert rec["reason"].startswith("circuit breaker skipped gpt-4o-mini|openai|default (open)")
    # and once it is closed again it is back
    healed = table(gpt_4o_mini=CircuitStatus.CLOSED)
    assert picks(engine, healed).count("gpt-4o-mini") > 150
    assert engine.recommend("summarize", breakers=healed).skipped == ()


def test_a_half_open_arm_gets_only_a_few_probing_requests():
    engine = trained()
    probing = table(gpt_4o_mini=CircuitStatus.HALF_OPEN)
    chosen = [
        engine.recommend(
            "summarize", rng=random.Random(i), breakers=probing, probe_rate=0.05
        ).arm.model
        for i in range(1000)
    ]
    share = chosen.count("gpt-4o-mini") / len(chosen)
    assert 0.01 < share < 0.1


def test_with_every_breaker_open_it_still_answers_and_says_why():
    engine = trained()
    rec = engine.recommend(
        "summarize",
        rng=random.Random(3),
        breakers=table(gpt_4o_mini=CircuitStatus.OPEN, gpt_4o=CircuitStatus.OPEN),
    )
    assert rec.arm.model in {"gpt-4o", "gpt-4o-mini"}
    assert rec.skipped == ()
    assert rec.reason.startswith("every candidate's circuit breaker is open")


def test_a_breaker_of_another_provider_changes_nothing():
    engine = trained()
    other = CircuitTable()
    other.apply(
        CircuitState("azure", "gpt-4o-mini", CircuitStatus.OPEN, 1, 20, 20, 60, 0, 30, "t", 1)
    )
    assert picks(engine, other, 50) == picks(engine, None, 50)
