"""The experiments' response models describe what the domain answers, without changing a byte."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from support import answered_through, json_bytes

from finops.experiments.adapters.repository import Experiment
from finops.experiments.api.schemas import ExperimentWithAuditOut, ResultsOut
from finops.experiments.domain.analysis import ExperimentAnalysis
from finops.experiments.domain.definition import build_definition
from finops.experiments.domain.tagged import Tagged

DEFINITION = build_definition(
    name="e",
    task_type="t",
    variants=[
        {"name": "A", "model": "big", "provider": "p", "config": {"temperature": 0}},
        {"name": "B", "model": "small", "provider": "p"},
    ],
    known_task_types={"t"},
    min_samples=50,
    max_duration_s=100,
)


def test_an_experiment_with_its_audit_is_answered_as_the_repository_builds_it() -> None:
    at = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    decision = {"winner": "B", "reason": "cheaper", "decided_at": at.isoformat(), "n": [3, 4]}
    experiment = Experiment("x", DEFINITION, "decided", "salt", "ops", at, at, None, decision)
    audit = [{"at": at.isoformat(), "actor": "ops", "action": "start", "details": {}}]
    body = {**experiment.to_api(), "audit": audit}
    assert body["min_samples"] == 50 and body["max_duration_s"] == 100  # integers stay so
    assert answered_through(ExperimentWithAuditOut, body) == json_bytes(body)


def test_results_are_answered_as_the_analysis_reports_them() -> None:
    rng = random.Random(0)
    analysis = ExperimentAnalysis()
    analysis.track("x", DEFINITION, started_at=0.0)
    for i in range(400):
        variant = "AB"[i % 2]
        cost = (0.01 if variant == "A" else 0.007) * rng.lognormvariate(0, 0.3)
        analysis.observe(Tagged(f"id-{i}", "x", variant, cost, True, 500.0, 0.9), 1)
    body = {"status": "decided", **analysis.results("x", DEFINITION)}
    assert body["decision"] is not None and body["variants"][1]["interval"]
    assert answered_through(ResultsOut, body) == json_bytes(body)
    fresh = {"status": "draft", **ExperimentAnalysis().results("y", DEFINITION)}
    assert fresh["decision"] is None
    assert answered_through(ResultsOut, fresh) == json_bytes(fresh)
