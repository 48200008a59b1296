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
    assert engine.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o")) == "promoted"
    picks = [engine.recommend("summarize", rng=rng) for _ in range(50)]
    assert {p.arm.model for p in picks} == {"gpt-4o-mini"}
    assert all(p.propensity == 1.0 for p in picks)
    assert "winner of experiment 'mini-vs-4o' (exp-1), variant B" in picks[0].reason
    # other task types are untouched
    assert engine.recommend("translate", rng=rng).arm.model == "gpt-4o"


def test_a_stop_without_winner_changes_nothing_and_a_withdrawn_winner_keeps_losers_out() -> None:
    engine = trained_engine()
    stopped = {**decision("summarize", "gpt-4o-mini", "gpt-4o"), "winner_arm": None}
    assert engine.adopt_decision(stopped) == "no_winner"
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
    # the same decision announced again while pinned: the pin is the same, not a promotion
    assert restored.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o")) == "repeated"
    assert restored.promoted == engine.promoted
    assert restored.recommend("summarize", rng=random.Random(3)).arm.model == "gpt-4o-mini"


def collapse(engine: OptimizerEngine, model: str, quality: float, calls: int = 200) -> list[dict]:
    """Calls of ``model`` on summarize at a new, steady quality; the alerts they raised."""
    rng = random.Random(5)
    alerts = []
    for _ in range(calls):
        alerts += engine.observe(call(model, "summarize", max(0.0, rng.gauss(quality, 0.02))))
    return alerts


def test_a_winner_whose_quality_then_falls_is_no_longer_pinned() -> None:
    engine = trained_engine()
    engine.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o"))
    alerts = collapse(engine, "gpt-4o-mini", 0.2)  # the winner was 0.6 when it won
    drifts = [a for a in alerts if a["kind"] == "drift"]
    assert [(a["details"]["metric"], a["details"]["direction"]) for a in drifts][:1] == [
        ("quality", "decrease")
    ]
    assert drifts[0]["details"]["unpinned_experiment_id"] == "exp-1"
    assert "winner of experiment 'mini-vs-4o' (exp-1): the pin is lifted" in drifts[0]["message"]
    assert engine.promotions_lifted["summarize"]["lifted"]["metric"] == "quality"
    # kept apart from the pins: a version before lifted pins (e87b306), rolled back to, reads
    # only "promoted" and would otherwise pin the drifted winner again
    assert "summarize" not in engine.to_state()["promoted"]
    rng = random.Random(6)
    picks = [engine.recommend("summarize", rng=rng) for _ in range(30)]
    # the policy chooses again, among every arm: the big model it beat (0.95) comes back
    assert not any(p.reason.startswith("winner of experiment") for p in picks)
    assert "gpt-4o" in {p.arm.model for p in picks}
    # the same decision announced again (at least once) does not pin it again, nor a restore
    assert engine.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o")) == "repeated"
    restored = OptimizerEngine.from_state(engine.to_state())
    for e in (engine, restored):
        assert not e.recommend("summarize", rng=rng).reason.startswith("winner of experiment")
    # another experiment's winner for the task type is pinned
    another = {**decision("summarize", "gpt-4o", "gpt-4o-mini"), "experiment_id": "x2"}
    assert engine.adopt_decision(another) == "promoted"
    assert engine.promotions_lifted == {}
    assert engine.recommend("summarize", rng=rng).reason.startswith("winner of experiment")


def test_a_drift_of_another_arm_or_for_the_better_keeps_the_pin() -> None:
    engine = trained_engine()
    engine.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o"))
    alerts = collapse(engine, "gpt-4o", 0.3) + collapse(engine, "gpt-4o-mini", 0.9)
    drifts = [
        (a["details"]["arm"], a["details"]["metric"], a["details"]["direction"])
        for a in alerts
        if a["kind"] == "drift"
    ]
    assert ("gpt-4o|openai|default", "quality", "decrease") in drifts
    assert ("gpt-4o-mini|openai|default", "quality", "increase") in drifts
    assert not any("unpinned_experiment_id" in a["details"] for a in alerts)
    assert all(
        "stays pinned to the winner of experiment 'mini-vs-4o'" in a["message"]
        for a in alerts
        if a["kind"] == "drift"
    )
    assert "lifted" not in engine.promoted["summarize"] and engine.promotions_lifted == {}
    pick = engine.recommend("summarize", rng=random.Random(7))
    assert (pick.arm.model, pick.propensity) == ("gpt-4o-mini", 1.0)


def test_a_checkpoint_marking_a_lifted_pin_inside_the_pins_restores_it_lifted() -> None:
    # commits 0ea63b8 to e4b92c9 (never landed) kept a lifted pin in "promoted", marked
    engine = trained_engine()
    engine.adopt_decision(decision("summarize", "gpt-4o-mini", "gpt-4o"))
    state = engine.to_state()
    state["promoted"]["summarize"]["lifted"] = {"metric": "quality", "direction": "decrease"}
    del state["promotions_lifted"]
    restored = OptimizerEngine.from_state(state)
    assert restored.promoted == {}
    assert restored.promotions_lifted["summarize"]["experiment_id"] == "exp-1"
    pick = restored.recommend("summarize", rng=random.Random(9))
    assert not pick.reason.startswith("winner of experiment")
