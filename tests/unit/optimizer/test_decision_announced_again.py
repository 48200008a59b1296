"""A decision announced again (the experiments' outbox announces at least once, and again
after a publish that failed halfway) is counted ``repeated`` on
``finops_optimizer_events_total``, not as a new promotion, whether the winner is still pinned
or a drift lifted its pin, by the one-worker intake and the partitioned one alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from finops.common.topics import EXPERIMENTS
from finops.optimizer.adapters.engine_shards import EngineShards
from finops.optimizer.adapters.stream import EventIntake
from finops.optimizer.adapters.task_type_forward import DECISION, INPUT_HEADER
from finops.optimizer.domain.engine import OptimizerEngine

LEARNING = "finops.optimizer-events.v1"


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


def one_worker() -> tuple[OptimizerEngine, Callable[[dict], None], str]:
    intake = EventIntake(
        OptimizerEngine(),
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
    engine = OptimizerEngine()

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
    # a drift of the winner lifted the pin (the engine keeps it apart from the pins)
    engine.promotions_lifted["summarize"] = {
        **engine.promoted.pop("summarize"),
        "lifted": {"metric": "quality", "direction": "decrease"},
    }
    read(decision())  # announced again after the lift: the pin stays lifted
    assert added() == {"promoted": 1, "repeated": 2, "no_winner": 0}
    assert "summarize" not in engine.promoted
    read(decision("exp-2"))  # another experiment's winner for the task type: a promotion
    read(decision("exp-3", winner=None))
    assert added() == {"promoted": 2, "repeated": 2, "no_winner": 1}
    assert engine.promoted["summarize"]["experiment_id"] == "exp-2"
