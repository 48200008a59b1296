"""An agent that names itself by its user id is paced by its username's budgets: one name per
agent, as its events are recorded at ingest (``Principal.agent_name``)."""

from __future__ import annotations

from datetime import UTC, datetime

from api_app import operator_client
from support import llm_call

from finops.common.events import apply_pricing, parse_event

SUB = "5f0c6a52-8d1e-4d7b-9a51-0f6a8e2c1b11"


def test_a_recommendation_asked_by_user_id_is_paced_and_logged_by_username() -> None:
    client = operator_client()
    app = client.app
    engine = app.state.intake.engine  # type: ignore[attr-defined]
    for i, model in enumerate(["gpt-4o-mini", "gpt-4o"] * 5):
        engine.observe(apply_pricing(parse_event(llm_call(f"agent-{i}", model=model))))
    budget = {"scope": "agent", "subject": "operator-1", "period": "day", "limit_usd": 1.0}
    assert client.put("/api/budgets/op-day", json=budget).status_code == 200
    engine.budgets.observe_cost("agent", "operator-1", datetime.now(UTC), 5.0)  # spent
    tokens = app.state.tokens  # type: ignore[attr-defined]
    token = tokens.token("operator-1", role="operator", subject=SUB)
    headers = {"Authorization": f"Bearer {token}"}
    answers = [
        client.get(
            "/api/recommendations",
            params={"task_type": "summarize", "agent_id": agent_id, "seed": 7},
            headers=headers,
        )
        for agent_id in ("operator-1", SUB)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    by_name, by_id = (a.json() for a in answers)
    exhausted = "budget pacing (exhausted, cap $0.000000/call); cheapest arm"
    assert [a["reason"][: len(exhausted)] for a in (by_name, by_id)] == [exhausted] * 2
    reclog = app.state.reclog  # type: ignore[attr-defined]
    assert [r["agent_id"] for r in reclog.records] == ["operator-1", "operator-1"]
