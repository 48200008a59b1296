"""The optimizer's HTTP layer refuses bad input with a 4xx and a code, never a 500.

The API runs on an in-memory engine with checkpoints that go nowhere; tokens are verified for
real (RS256) against a blocklist that holds nothing.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from api_app import operator_client
from fastapi.testclient import TestClient
from support import agent_mismatch_error, llm_call, team_mismatch_error

from finops.client import AsyncFinOpsClient
from finops.common.events import apply_pricing, parse_event
from finops.optimizer.domain.analytics import DIMENSIONS, FLEET


@pytest.fixture(scope="module")
def client() -> TestClient:
    return operator_client()


def budget(**overrides: Any) -> dict[str, Any]:
    return {"scope": "team", "subject": "search", "period": "day", "limit_usd": 5.0, **overrides}


def assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(d["field"].startswith(field) for d in error["details"]), error


@pytest.mark.parametrize("path", ["/api/stats/agent/top", "/api/stats/agent"])
def test_an_unknown_metric_to_sort_by_is_422(client: TestClient, path: str) -> None:
    assert_refused(client.get(path, params={"by": "x"}), "query.by")


@pytest.mark.parametrize("thresholds", [[-0.5], [1e300], [0.8, 0]], ids=repr)
def test_alert_thresholds_outside_the_limit_range_are_422(
    client: TestClient, thresholds: list[float]
) -> None:
    assert_refused(client.put("/api/budgets/b1", json=budget(alert_thresholds=thresholds)), "")


@pytest.mark.parametrize(
    ("thresholds", "errors"),
    [
        ([1000], [("alert_thresholds.0", "less_than_equal")]),
        ([], [("alert_thresholds", "value_error")]),
    ],
    ids=["out of range", "none"],
)
def test_alert_thresholds_are_refused_with_one_error_each(
    client: TestClient, thresholds: list[float], errors: list[tuple[str, str]]
) -> None:
    # one threshold out of range also said "Tuple should have at least 1 item after
    # validation, not 0", which is not what was sent
    response = client.put("/api/budgets/b1", json=budget(alert_thresholds=thresholds))
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [(d["field"], d["type"]) for d in details] == errors


@pytest.mark.parametrize("limit", [-5.0, 0.0, 5e-324, 1e-300, 0.0000009], ids=repr)
def test_a_budget_limit_below_a_micro_dollar_is_422(client: TestClient, limit: float) -> None:
    assert_refused(client.put("/api/budgets/tiny", json=budget(limit_usd=limit)), "limit_usd")
    # the smallest limit taken is a micro-dollar
    assert client.put("/api/budgets/tiny", json=budget(limit_usd=0.000001)).status_code == 200
    assert client.get("/api/budgets").status_code == 200
    assert client.delete("/api/budgets/tiny").status_code == 204


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/budgets/b1",
            b'{"scope": "team", "subject": "s", "period": "day", "limit_usd": Infinity}',
            "limit_usd",
        ),
        ("/api/objectives/summarize", b'{"latency_p95_ms": Infinity}', "latency_p95_ms"),
        ("/api/objectives/summarize", b'{"wtp_per_usd": NaN}', "wtp_per_usd"),
    ],
    ids=["limit", "latency", "nan"],
)
def test_numbers_that_are_not_finite_are_422(
    client: TestClient, path: str, body: bytes, field: str
) -> None:
    response = client.put(path, content=body, headers={"Content-Type": "application/json"})
    assert_refused(response, field)


@pytest.mark.parametrize("value", ["inf", "nan", "many"])
def test_a_feature_that_is_not_a_finite_number_is_422(client: TestClient, value: str) -> None:
    response = client.get("/api/recommendations", params={"task_type": "t", "tokens": value})
    assert_refused(response, "query.tokens")
    # the shape of every other validation error: field, message, type
    assert response.json()["error"]["details"] == [
        {
            "field": "query.tokens",
            "message": f"not a finite number: {value!r}",
            "type": "finite_number",
        }
    ]


def test_too_many_features_is_422_with_details(client: TestClient) -> None:
    params = {"task_type": "t", **{f"f{i}": "1" for i in range(33)}}
    response = client.get("/api/recommendations", params=params)
    assert_refused(response, "query")  # details were null
    assert response.json()["error"]["details"][0]["type"] == "too_many_features"


def test_a_nul_in_a_body_field_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/api/catalog", json={"model": "a\x00b", "provider": "openai"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == [
        {
            "field": "model",
            "message": "the string holds a NUL character or an unpaired surrogate",
            "type": "invalid_text",
        }
    ]
    response = client.put("/api/budgets/b1", json=budget(subject="s\x00"))
    assert [d["field"] for d in response.json()["error"]["details"]] == ["subject"]


def test_a_valid_budget_is_stored_and_checkpointed(client: TestClient) -> None:
    intake = client.app.state.intake  # type: ignore[attr-defined]
    before = intake.checkpoints
    response = client.put("/api/budgets/b2", json=budget(alert_thresholds=[0.5, 1.0]))
    assert response.status_code == 200, response.text
    assert response.json()["budget"]["alert_thresholds"] == [0.5, 1.0]
    assert intake.checkpoints == before + 1


def test_the_fleet_has_no_top_keys(client: TestClient) -> None:
    assert_refused(client.get("/api/stats/fleet/top"), "path.dimension")


def test_an_unknown_dimension_is_one_error_naming_the_path_parameter(client: TestClient) -> None:
    response = client.get("/api/stats/bogus")
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "path.dimension"
    assert detail["type"] == "literal_error"


def test_a_body_over_the_limit_undecodable_or_not_json_gets_its_declared_code(
    client: TestClient,
) -> None:
    url, json_type = "/api/objectives/summarize", {"Content-Type": "application/json"}
    answers = [
        client.put(url, content=b"{" + b" " * (1024 * 1024) + b"}", headers=json_type),
        client.put(url, content=b'{"quality_floor": "\xff"}', headers=json_type),
        client.put(url, content=b"{quality", headers=json_type),
    ]
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [
        (413, "payload_too_large"),
        (400, "invalid_json"),
        (400, "invalid_json"),
    ]


@pytest.fixture(scope="module")
def trained() -> TestClient:
    """A client whose engine has seen calls of ``summarize``: a recommendation is answered."""
    client = operator_client()
    engine = client.app.state.intake.engine  # type: ignore[attr-defined]
    for i, model in enumerate(["gpt-4o-mini", "gpt-4o"] * 5):
        engine.observe(apply_pricing(parse_event(llm_call(f"agent-{i}", model=model))))
    return client


@pytest.mark.parametrize(
    ("query", "field", "holds"),
    [
        ({"task_type": "\x00"}, "task_type", "value"),
        ({"task_type": "sum\x00marize"}, "task_type", "value"),
        # the caller's own name once the NUL is gone (another's needs events:write:any)
        ({"task_type": "summarize", "agent_id": "operator-1\x00"}, "agent_id", "value"),
        ({"task_type": "summarize", "team": "\x00search"}, "team", "value"),
        ({"task_type": "summarize", "input\x00tokens": "12"}, "input\x00tokens", "name"),
        ({"task_type": "summarize", "seed": "\x00"}, "seed", "value"),
    ],
    ids=["task_type", "task_type_inside", "agent_id", "team", "feature_name", "seed"],
)
def test_a_nul_in_a_query_value_or_name_is_422_invalid_text_and_nothing_is_logged(
    trained: TestClient, query: dict[str, str], field: str, holds: str
) -> None:
    reclog = trained.app.state.reclog  # type: ignore[attr-defined]
    logged = len(reclog.records)
    response = trained.get("/api/recommendations", params=query)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == {
        "code": "validation_error",
        "message": "a query parameter holds a NUL character (%00), which no value may contain",
        "details": [
            {
                "field": f"query.{field}",
                "message": f"the {holds} holds a NUL character",
                "type": "invalid_text",
            }
        ],
    }
    assert len(reclog.records) == logged
    # the same request without the NUL is answered
    clean = {k.replace("\x00", ""): v.replace("\x00", "") or "x" for k, v in query.items()}
    if field == "seed":
        clean["seed"] = "1"
    assert trained.get("/api/recommendations", params=clean).status_code == 200
    assert len(reclog.records) == logged + 1


def test_a_recommendation_in_another_agents_name_is_403_agent_mismatch_and_not_logged(
    trained: TestClient,
) -> None:
    reclog = trained.app.state.reclog  # type: ignore[attr-defined]
    logged = len(reclog.records)
    query = {"task_type": "summarize", "agent_id": "someone-else"}
    response = trained.get("/api/recommendations", params=query)
    assert (response.status_code, response.json()["error"]) == (
        403,
        agent_mismatch_error("someone-else"),
    )
    assert len(reclog.records) == logged
    # the caller's own name, and any name with a token holding events:write:any (an admin's)
    own = trained.get("/api/recommendations", params={**query, "agent_id": "operator-1"})
    tokens = trained.app.state.tokens  # type: ignore[attr-defined]
    admin = {"Authorization": f"Bearer {tokens.token('ops', role='admin')}"}
    other = trained.get("/api/recommendations", params=query, headers=admin)
    assert (own.status_code, other.status_code) == (200, 200)
    assert [r["agent_id"] for r in reclog.records[logged:]] == ["operator-1", "someone-else"]


def test_a_recommendation_for_a_team_a_bound_caller_is_not_bound_to_is_403_team_mismatch(
    trained: TestClient,
) -> None:
    reclog = trained.app.state.reclog  # type: ignore[attr-defined]
    logged = len(reclog.records)
    tokens = trained.app.state.tokens  # type: ignore[attr-defined]

    def as_caller(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    bound = as_caller(tokens.token("bot1", role="agent", teams=["search"]))
    query = {"task_type": "summarize", "team": "finance"}
    response = trained.get("/api/recommendations", params=query, headers=bound)
    assert (response.status_code, response.json()["error"]) == (
        403,
        team_mismatch_error("finance"),
    )
    assert len(reclog.records) == logged
    # its own team, no team, an unbound caller and a token holding events:write:any
    own = trained.get("/api/recommendations", params={**query, "team": "search"}, headers=bound)
    none = trained.get("/api/recommendations", params={"task_type": "summarize"}, headers=bound)
    unbound = as_caller(tokens.token("bot2", role="agent"))
    admin = as_caller(tokens.token("ops", role="admin", teams=["search"]))
    answers = [own, none] + [
        trained.get("/api/recommendations", params=query, headers=headers)
        for headers in (unbound, admin)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert len(reclog.records) == logged + 4


def test_an_empty_agent_id_is_taken_as_not_given(trained: TestClient) -> None:
    reclog = trained.app.state.reclog  # type: ignore[attr-defined]
    logged = len(reclog.records)
    response = trained.get(
        "/api/recommendations", params={"task_type": "summarize", "agent_id": ""}
    )
    assert response.status_code == 200, response.text
    assert [r["agent_id"] for r in reclog.records[logged:]] == [None]


@pytest.mark.parametrize("name", ["task_type", "agent_id", "team", "seed", "feature.x", "tokens"])
async def test_the_sdk_asks_with_a_feature_of_any_name_and_the_optimizer_takes_it_as_a_feature(
    trained: TestClient, name: str
) -> None:
    """A feature named like a request parameter once overwrote it: task "3.0", 403
    agent_mismatch, or the seed. ``record_call`` takes any feature name, so the optimizer is
    asked with the same names it learns from."""
    reclog = trained.app.state.reclog  # type: ignore[attr-defined]
    logged = len(reclog.records)
    token = trained.headers["authorization"].removeprefix("Bearer ")
    async with AsyncFinOpsClient(
        ingest_url="http://ingest",
        optimizer_url="http://optimizer",
        agent_id="operator-1",
        token=token,
        transport=httpx.ASGITransport(app=trained.app),
    ) as finops:
        answer = await finops.recommend("summarize", {name: 3}, team="search", seed=5)
    assert answer["task_type"] == "summarize"
    [logged_answer] = reclog.records[logged:]
    assert (logged_answer["agent_id"], logged_answer["features"]) == ("operator-1", {name: 3.0})


def test_a_prefixed_feature_is_that_feature_and_a_feature_given_twice_is_422(
    trained: TestClient,
) -> None:
    reclog = trained.app.state.reclog  # type: ignore[attr-defined]
    logged = len(reclog.records)
    query = "task_type=summarize&feature.task_type=3&feature.feature.x=1&tokens=2"
    assert trained.get(f"/api/recommendations?{query}").status_code == 200
    assert reclog.records[-1]["features"] == {"task_type": 3.0, "feature.x": 1.0, "tokens": 2.0}
    for query, field in [
        ("tokens=1&feature.tokens=2", "query.feature.tokens"),
        ("tokens=1&tokens=2", "query.tokens"),
    ]:
        response = trained.get(f"/api/recommendations?task_type=summarize&{query}")
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"] == [
            {
                "field": field,
                "message": "feature 'tokens' given more than once",
                "type": "duplicate_feature",
            }
        ]
    assert len(reclog.records) == logged + 1


def test_every_query_parameter_holding_a_nul_is_named(trained: TestClient) -> None:
    response = trained.get(
        "/api/recommendations?task_type=a%00&team=ok&agent_id=%00&agent_id=b&x%00=%00"
    )
    assert response.status_code == 422, response.text
    assert [(d["field"], d["type"]) for d in response.json()["error"]["details"]] == [
        ("query.task_type", "invalid_text"),
        ("query.agent_id", "invalid_text"),
        ("query.x\x00", "invalid_text"),
    ]


def test_a_stats_key_holding_a_nul_is_422_invalid_text(trained: TestClient) -> None:
    response = trained.get("/api/stats/team", params={"key": "search\x00"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == [
        {"field": "query.key", "message": "the value holds a NUL character", "type": "invalid_text"}
    ]
    # an escaped percent sign is not a NUL
    assert trained.get("/api/stats/team?key=a%2500").status_code == 200


def test_the_openapi_text_of_the_stats_endpoints_names_every_dimension_they_accept(
    client: TestClient,
) -> None:
    """The summaries are derived from the list of dimensions, so they cannot miss one (the
    totals' summary once left out `fleet`)."""
    paths = client.get("/openapi.json").json()["paths"]
    # written out, not taken from the code the summaries are built from: a dimension added
    # or dropped there must be noticed here
    keyed = ["agent", "team", "task_type", "provider", "model"]
    assert sorted(DIMENSIONS) == sorted(keyed) and FLEET == "fleet"
    expected = {
        "/api/stats/{dimension}": sorted(["fleet", *keyed]),
        "/api/stats/{dimension}/top": sorted(keyed),
    }
    for path, dimensions in expected.items():
        operation = paths[path]["get"]
        [parameter] = [p for p in operation["parameters"] if p["name"] == "dimension"]
        assert sorted(parameter["schema"]["enum"]) == dimensions
        for dimension in dimensions:
            assert re.search(rf"\b{dimension}\b", operation["summary"]), (path, dimension)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("team", "a"), ("task_type", "summarize"), ("agent_id", "operator-1"), ("seed", "1")],
)
def test_a_parameter_given_twice_is_422_not_the_last_one(
    trained: TestClient, parameter: str, value: str
) -> None:
    # `?team=a&team=b` took the last value silently
    query = f"{parameter}={value}&{parameter}={value}"
    if parameter != "task_type":
        query = f"task_type=summarize&{query}"
    response = trained.get(f"/api/recommendations?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == [
        {
            "field": f"query.{parameter}",
            "message": f"{parameter!r} given more than once",
            "type": "duplicate_parameter",
        }
    ]


@pytest.mark.parametrize(
    ("key", "length"), [("", 0), ("feature.", 0), ("f" * 65, 65), ("feature." + "g" * 6000, 6000)]
)
def test_a_feature_name_empty_or_over_64_characters_is_422_and_nothing_is_logged(
    trained: TestClient, key: str, length: int
) -> None:
    # an event's feature names have 1 to 64 characters; a recommendation took any name,
    # even "" or thousands of characters, and logged it on finops.recommendations.v1
    reclog = trained.app.state.reclog  # type: ignore[attr-defined]
    logged = len(reclog.records)
    response = trained.get(f"/api/recommendations?task_type=summarize&{key}=1")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == [
        {
            "field": f"query.{key}",
            "message": f"a feature's name has 1 to 64 characters, not {length}",
            "type": "feature_name_length",
        }
    ]
    assert len(reclog.records) == logged
    longest = "h" * 64
    assert trained.get(f"/api/recommendations?task_type=summarize&{longest}=1").status_code == 200
