"""The optimizer adopts experiment winners: the winner is recommended for its task type with
the experiment named, the arms it beat are not, and the promotion survives a restore."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from support import llm_call

from finops.common.events import LlmCallEvent, apply_pricing, parse_event
from finops.optimizer.domain.arm_identity import ArmSpec
from finops.optimizer.domain.engine import OptimizerEngine

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def call(model: str, task: str, quality: float) -> LlmCallEvent:
    usage = {"input_tokens": 1000, "output_tokens": 200}
    data = {"task_type": task, "model": model, "usage": usage, "latency_ms": 500.0}
    return apply_pricing(parse_event(llm_call("bot", at=T0, quality=quality, **data)))  # type: ignore[return-value]


def decision(task: str, winner: str, loser: str) -> dict:
    return {
        "kind": "decision",
        "experiment_id": "exp-1",
        "name": "mini-vs-4o",
        "task_type": task,
        "status": "decided",
        "winner": "B",
        "reason": "B beats A on cost_per_success",
        "decided_at": T0.isoformat(),
        "winner_arm": {"model": winner, "provider": "openai", "config": {}},
        "losers": [{"name": "A", "model": loser, "provider": "openai", "config": {}}],
    }


def trained_engine() -> OptimizerEngine:
    engine = OptimizerEngine(seed=0)
    rng = random.Random(0)
    for _ in range(200):
        # the big model is clearly better: the policy alone would keep recommending it
        engine.observe(call("gpt-4o", "summarize", min(1.0, rng.gauss(0.95, 0.02))))
        engine.observe(call("gpt-4o-mini", "summarize", min(1.0, rng.gauss(0.6, 0.02))))
        engine.observe(call("gpt-4o", "translate", min(1.0, rng.gauss(0.95, 0.02))))
    return engine


def test_the_winner_is_recommended_for_its_task_type_with_the_experiment_named() -> None:
    engine = trained_engine()
    rng = random.Random(1)
    assert engine.recommend("summarize", rng=rng).arm.model == "gpt-4o"
    assert engine.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o")) is True
    picks = [engine.recommend("summarize", rng=rng) for _ in range(50)]
    assert {p.arm.model for p in picks} == {"gpt-4o-mini"}
    assert all(p.propensity == 1.0 for p in picks)
    assert "winner of experiment 'mini-vs-4o' (exp-1), variant B" in picks[0].reason
    # other task types are untouched
    assert engine.recommend("translate", rng=rng).arm.model == "gpt-4o"


def test_a_stop_without_winner_changes_nothing_and_a_withdrawn_winner_keeps_losers_out() -> None:
    engine = trained_engine()
    stopped = {**decision("summarize", "gpt-4o-mini", "gpt-4o"), "winner_arm": None}
    assert engine.adopt_decision(stopped) is False
    assert engine.promoted == {}
    engine.observe(call("gpt-3.5", "summarize", 0.5))
    engine.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o"))
    engine.add_catalog_arm(ArmSpec("gpt-4o-mini", "openai"))
    engine.remove_catalog_arm(ArmSpec("gpt-4o-mini", "openai").arm_id)
    rng = random.Random(2)
    models = {engine.recommend("summarize", rng=rng).arm.model for _ in range(30)}
    assert models == {"gpt-3.5"}


def test_a_promotion_survives_a_state_round_trip() -> None:
    engine = trained_engine()
    engine.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o"))
    restored = OptimizerEngine.from_state(engine.to_state())
    assert restored.promoted == engine.promoted
    assert restored.recommend("summarize", rng=random.Random(3)).arm.model == "gpt-4o-mini"
