"""A decision announced again (the experiments' outbox announces at least once, and again
after a publish that failed halfway) is counted ``repeated`` on
``finops_optimizer_events_total``, not as a new promotion, whether the winner is still pinned
or a drift lifted its pin, by the one-worker intake and the partitioned one alike."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from support import llm_call

from finops.common.events import LlmCallEvent, apply_pricing, parse_event
from finops.common.topics import EXPERIMENTS
from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.adapters.stream import EventIntake
from finops.optimizer.adapters.task_type_forward import DECISION, INPUT_HEADER
from finops.optimizer.domain.engine import OptimizerEngine

LEARNING = "finops.optimizer-events.v1"
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def decision(experiment_id: str = "exp-1", winner: str | None = "gpt-4o-mini") -> dict:
    return {
        "kind": "decision",
        "experiment_id": experiment_id,
        "name": "mini-vs-4o",
        "task_type": "summarize",
        "status": "decided" if winner else "stopped",
        "winner": "B" if winner else None,
        "reason": "B beats A",
        "decided_at": "2026-12-02T08:00:00+00:00",
        "winner_arm": {"model": winner, "provider": "openai", "config": {}} if winner else None,
        "losers": [{"name": "A", "model": "gpt-4o", "provider": "openai", "config": {}}],
        "n": [500, 500],
    }


def counts(topic: str) -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value(
            "finops_optimizer_events_total", {"topic": topic, "outcome": outcome}
        )
        or 0.0
        for outcome in ("promoted", "repeated", "no_winner")
    }


def call(model: str, quality: float) -> LlmCallEvent:
    usage = {"input_tokens": 1000, "output_tokens": 200}
    data = {"task_type": "summarize", "model": model, "usage": usage, "latency_ms": 500.0}
    return apply_pricing(parse_event(llm_call("bot", at=T0, quality=quality, **data)))  # type: ignore[return-value]


def trained_engine() -> OptimizerEngine:
    """An engine that has seen both models on summarize (the winner at about 0.6): the
    baseline a drift of the winner is measured against."""
    engine = OptimizerEngine(seed=0)
    rng = random.Random(0)
    for _ in range(200):
        engine.observe(call("gpt-4o", min(1.0, rng.gauss(0.95, 0.02))))
        engine.observe(call("gpt-4o-mini", min(1.0, rng.gauss(0.6, 0.02))))
    return engine


def one_worker() -> tuple[OptimizerEngine, Callable[[dict], None], str]:
    intake = EventIntake(
        trained_engine(),
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        experiments_topic=EXPERIMENTS.name,
    )

    def read(body: dict) -> None:
        intake._adopt(SimpleNamespace(topic=EXPERIMENTS.name, value=json.dumps(body).encode()))

    return intake.engine, read, EXPERIMENTS.name


def partitioned() -> tuple[OptimizerEngine, Callable[[dict], None], str]:
    shards = EngineShards(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        topic=LEARNING,
        resume=None,  # type: ignore[arg-type]
        name="optimizer",
        new_engine=OptimizerEngine,
        shards_topic="shards",
        alerts_topic="alerts",
    )
    engine = trained_engine()

    def read(body: dict) -> None:
        record: Any = SimpleNamespace(
            topic=LEARNING, value=json.dumps(body).encode(), headers=[(INPUT_HEADER, DECISION)]
        )
        shards._apply(engine, record)

    return engine, read, LEARNING


@pytest.mark.parametrize("intake", [one_worker, partitioned], ids=["one worker", "partitioned"])
def test_a_decision_announced_again_is_counted_repeated_not_promoted(intake) -> None:
    engine, read, topic = intake()
    before = counts(topic)

    def added() -> dict[str, float]:
        return {k: v - before[k] for k, v in counts(topic).items()}

    read(decision())
    assert added() == {"promoted": 1, "repeated": 0, "no_winner": 0}
    read(decision())  # announced again while pinned
    assert added() == {"promoted": 1, "repeated": 1, "no_winner": 0}
    # the winner's quality collapses: the engine's drift detector lifts the pin (kept apart
    # from the pins)
    rng = random.Random(5)
    for _ in range(200):
        engine.observe(call("gpt-4o-mini", max(0.0, rng.gauss(0.2, 0.02))))
    assert engine.promotions_lifted["summarize"]["lifted"]["metric"] == "quality"
    assert "summarize" not in engine.promoted
    read(decision())  # announced again after the lift: the pin stays lifted
    assert added() == {"promoted": 1, "repeated": 2, "no_winner": 0}
    assert "summarize" not in engine.promoted
    read(decision("exp-2"))  # another experiment's winner for the task type: a promotion
    read(decision("exp-3", winner=None))
    assert added() == {"promoted": 2, "repeated": 2, "no_winner": 1}
    assert engine.promoted["summarize"]["experiment_id"] == "exp-2"
