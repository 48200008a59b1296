"""Every JSON answer of the optimizer goes through its response model and keeps its bytes.

The response models (``api/schemas.py``) document the answers in OpenAPI; they must not change
a byte of them: each answer here equals ``json.dumps`` of what the engine returns. Operator
changes go through the service layer, which checkpoints each one exactly once.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest
from api_app import operator_client
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from support import json_bytes as encoded
from support import llm_call

from finops.common.events import apply_pricing, parse_event
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.domain.policy import Mechanism

METRIC = "finops_optimizer_recommendations_total"


@pytest.fixture(scope="module")
def client() -> TestClient:
    client = operator_client()
    engine: OptimizerEngine = client.app.state.intake.engine  # type: ignore[attr-defined]
    rng = random.Random(5)
    for i in range(40):
        model = ("gpt-4o-mini", "gpt-4o")[i % 2]
        tokens = {"input_tokens": rng.randint(1, 20), "output_tokens": rng.randint(0, 5)}
        event = llm_call(f"agent-{i % 3}", model=model, usage=tokens, quality=rng.random())
        engine.observe(apply_pricing(parse_event(event)))
    return client


def engine_of(client: TestClient) -> OptimizerEngine:
    return client.app.state.intake.engine  # type: ignore[attr-defined, no-any-return]


def test_reads_answer_exactly_what_the_engine_returns(client: TestClient) -> None:
    engine = engine_of(client)
    expected = {
        "/api/stats/summary": engine.analytics.summary(),
        "/api/stats/model": {"dimension": "model", "totals": engine.analytics.totals("model")},
        "/api/stats/agent?window=minute&limit=3": {
            "dimension": "agent",
            "window": "minute",
            "windows": engine.analytics.window("agent", "minute", limit=3),
        },
        "/api/stats/team/top?n=2": {
            "dimension": "team",
            "by": "spend_usd",
            "top": engine.analytics.top("team", n=2),
        },
        "/api/tasks": {"policy": engine.policy.status(), "tasks": engine.tasks()},
        "/api/objectives": engine.objectives(),
        "/api/catalog": {
            "arms": [spec.to_dict() for spec in engine.catalog.values()],
            "seen": [spec.to_dict() for spec in engine.arms.values()],
            "withdrawn": sorted(engine.withdrawn),
        },
    }
    for path, content in expected.items():
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.content == encoded(content), path
    # Small spends are where pydantic's encoder would write 0.00001 for json.dumps' 1e-05.
    assert b"e-0" in client.get("/api/stats/model").content


def test_a_recommendation_answers_what_it_logs(client: TestClient) -> None:
    response = client.get("/api/recommendations", params={"task_type": "summarize", "seed": 3})
    assert response.status_code == 200, response.text
    logged = dict(client.app.state.reclog.records[-1])  # type: ignore[attr-defined]
    del logged["agent_id"], logged["features"]
    assert response.content == encoded(logged)
    assert response.json()["model"] in {"gpt-4o-mini", "gpt-4o"}


def test_each_operator_change_is_checkpointed_once_and_answered_as_the_engine_holds_it(
    client: TestClient,
) -> None:
    intake = client.app.state.intake  # type: ignore[attr-defined]
    before = intake.checkpoints
    arm = {"model": "gpt-4.1", "provider": "openai", "config": {"temperature": 0.5}}
    added = client.post("/api/catalog", json=arm)
    assert added.status_code == 201, added.text
    assert added.content == encoded(intake.engine.catalog[added.json()["arm"]].to_dict())
    objective = client.put("/api/objectives/summarize", json={"quality_floor": 0.5})
    assert objective.content == encoded({"summarize": intake.engine.objectives()["summarize"]})
    budget = {"scope": "team", "subject": "search", "period": "day", "limit_usd": 5}
    put = client.put("/api/budgets/b-1", json=budget)
    assert put.content == encoded(intake.engine.budgets.status("b-1"))
    assert put.json()["budget"]["limit_usd"] == 5  # an integer stays an integer
    assert client.get("/api/budgets").content == encoded(
        {"budgets": intake.engine.budgets.statuses()}
    )
    assert client.delete("/api/budgets/b-1").status_code == 204
    assert client.delete(f"/api/catalog/{added.json()['arm']}").status_code == 204
    assert intake.checkpoints == before + 5
    assert intake.engine.budgets.get("b-1") is None
    assert added.json()["arm"] in intake.engine.withdrawn


def test_a_change_that_finds_nothing_to_remove_saves_no_checkpoint(client: TestClient) -> None:
    intake = client.app.state.intake  # type: ignore[attr-defined]
    before = intake.checkpoints
    assert client.delete("/api/budgets/none-such").status_code == 404
    missing = client.delete("/api/catalog/none|such|default")
    assert missing.status_code == 404
    # it said only "no catalog arm ...", also for an arm agents report calls with
    assert "offer it first (POST /api/catalog" in missing.json()["error"]["message"]
    assert intake.checkpoints == before


def test_each_answer_is_counted_by_what_made_the_pick(client: TestClient) -> None:
    def counted() -> dict[str, float]:
        made_by = ["greedy", *(str(m) for m in Mechanism)]
        samples = {m: REGISTRY.get_sample_value(METRIC, {"made_by": m}) or 0.0 for m in made_by}
        return samples

    before = counted()
    answers = [
        client.get("/api/recommendations", params={"task_type": "summarize", "seed": s}).json()
        for s in range(60)
    ]
    after = counted()
    expected = Counter(a["exploration"] or "greedy" for a in answers)
    assert 0 < expected["greedy"] < len(answers)  # greedy and explored answers both counted
    assert {m: after[m] - before[m] for m in after if after[m] != before[m]} == expected


def test_the_openapi_schema_lists_every_exploration_value_for_api_readers(
    client: TestClient,
) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    exploration = schemas["RecommendationOut"]["properties"]["exploration"]
    (values,) = [s["enum"] for s in exploration["anyOf"] if s.get("type") == "string"]
    assert values == [m.value for m in Mechanism]
    assert {"type": "null"} in exploration["anyOf"]
    assert "docs/optimizer.md" in exploration["description"]
    assert ">>>" not in str(schemas)  # no docstring example leaks into the API's documentation


def test_a_budget_on_an_optimizer_that_has_seen_no_call_is_as_of_null_not_1970() -> None:
    client = operator_client()
    put = client.put(
        "/api/budgets/support-daily",
        json={"scope": "team", "subject": "support", "period": "day", "limit_usd": 5},
    )
    assert put.status_code == 200, put.text
    [listed] = client.get("/api/budgets").json()["budgets"]
    for status in (put.json(), listed):
        assert (status["period_start"], status["period_end"], status["as_of"]) == (None,) * 3
        assert status["pacing"]["period_end"] is None
        assert (status["spend_usd"], status["calls"]) == (0, 0)
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name, field in [("BudgetStatusOut", "as_of"), ("PacingOut", "period_end")]:
        assert {"type": "null"} in schemas[name]["properties"][field]["anyOf"]


def test_a_new_budget_is_as_of_the_latest_call_the_optimizer_has_seen() -> None:
    client = operator_client()
    engine = engine_of(client)
    engine.observe(
        apply_pricing(parse_event(llm_call("bot", at=datetime(2026, 5, 17, 9, tzinfo=UTC))))
    )
    put = client.put(
        "/api/budgets/support-daily",
        json={"scope": "team", "subject": "support", "period": "day", "limit_usd": 5},
    )
    assert put.status_code == 200, put.text
    assert (put.json()["period_start"], put.json()["as_of"]) == (
        "2026-05-17T00:00:00Z",
        "2026-05-17T09:00:00Z",
    )
    listed = client.get("/api/budgets").json()["budgets"]
    assert [(b["period_start"], b["period_end"]) for b in listed] == [
        ("2026-05-17T00:00:00Z", "2026-05-18T00:00:00Z")
    ]


def test_a_fresh_budgets_pacing_sets_no_cap_until_there_is_a_call_rate() -> None:
    # it said max_cost_per_call_usd 500.0: the whole monthly budget on one call
    client = operator_client()
    engine = engine_of(client)
    engine.observe(  # the optimizer has seen a call, but none counted by this budget
        apply_pricing(parse_event(llm_call("bot", at=datetime(2026, 5, 17, 9, tzinfo=UTC))))
    )
    put = client.put(
        "/api/budgets/support-month",
        json={"scope": "team", "subject": "support", "period": "month", "limit_usd": 500},
    )
    assert put.status_code == 200, put.text
    fresh = operator_client()  # and on an optimizer that has seen no call at all
    put_fresh = fresh.put(
        "/api/budgets/support-month",
        json={"scope": "team", "subject": "support", "period": "month", "limit_usd": 500},
    )
    for status in (put.json(), put_fresh.json()):
        pacing = status["pacing"]
        assert pacing["action"] == "none"
        assert pacing["max_cost_per_call_usd"] is None
        assert pacing["expected_remaining_calls"] is None
        assert (pacing["current_cost_per_call_usd"], pacing["cost_ratio"]) == (None, None)
        assert pacing["remaining_usd"] == 500
        assert "no calls" in pacing["reason"] and "500" in pacing["reason"]
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for field in ("max_cost_per_call_usd", "expected_remaining_calls"):
        assert {"type": "null"} in schemas["PacingOut"]["properties"][field]["anyOf"]
    # a recommendation for the team goes on as without a budget
    answer = client.get(
        "/api/recommendations", params={"task_type": "summarize", "team": "support"}
    )
    assert answer.status_code == 200, answer.text
    assert "budget pacing" not in answer.json()["reason"]
