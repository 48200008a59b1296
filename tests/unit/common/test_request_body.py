"""Request bodies refuse what a service cannot store or would silently misread."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import Field

from finops.common.http import create_service_app
from finops.common.request_body import Count, Number, RequestBody
from finops.common.settings import CommonSettings


class Tier(RequestBody):
    name: str = Field(min_length=1)
    weight: Number | None = None


class Plan(RequestBody):
    tiers: list[Tier]
    limits: dict[str, Count] = Field(default_factory=dict)
    thresholds: tuple[Number, ...] = ()


def _app() -> FastAPI:
    app = create_service_app(CommonSettings(service_name="t"), title="t", description="t")

    @app.put("/plans/{plan_id}")
    async def put_plan(plan_id: str, plan: Plan) -> dict[str, object]:
        return {"id": plan_id, "tiers": [t.name for t in plan.tiers], "limits": plan.limits}

    return app


def test_a_valid_body_with_arrays_for_tuples_is_accepted():
    resp = TestClient(_app()).put(
        "/plans/p1",
        json={"tiers": [{"name": "a", "weight": 1}], "limits": {"x": 3}, "thresholds": [0.5, 1]},
    )
    assert resp.status_code == 200
    assert resp.json() == {"id": "p1", "tiers": ["a"], "limits": {"x": 3}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tiers": [{"name": "a", "weight": False}]}, "tiers.0.weight"),
        ({"tiers": [{"name": "a", "weight": "0.5"}]}, "tiers.0.weight"),
        ({"tiers": [], "limits": {"x": True}}, "limits.x"),
        ({"tiers": [], "limits": {"x": 2.0}}, "limits.x"),
        ({"tiers": [], "unknown": 1}, "unknown"),
    ],
)
def test_booleans_strings_and_unknown_fields_are_422_naming_the_field(body, field):
    resp = TestClient(_app()).put("/plans/p1", json=body)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert field in {d["field"] for d in error["details"]}


@pytest.mark.parametrize(
    "body",
    [
        {"tiers": [{"name": "a\x00b"}]},
        {"tiers": [], "limits": {"k\x00": 1}},
        '{"tiers": [{"name": "\\ud800"}]}',
    ],
)
def test_nul_or_lone_surrogate_at_any_depth_is_422(body):
    content = body if isinstance(body, str) else json.dumps(body)
    resp = TestClient(_app()).put(
        "/plans/p1", content=content, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "validation_error"
    assert "NUL" in resp.text


def test_each_string_holding_a_nul_or_lone_surrogate_is_named_by_its_field():
    """The details once had one entry with an empty field: which string was it?"""
    content = (
        '{"tiers": [{"name": "ok"}, {"name": "a\\u0000b"}],'
        ' "limits": {"k\\u0000": 1, "s\\ud800": 2}, "thresholds": [1]}'
    )
    resp = TestClient(_app()).put(
        "/plans/p1", content=content, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"] == [
        {
            "field": "tiers.1.name",
            "message": "the string holds a NUL character or an unpaired surrogate",
            "type": "invalid_text",
        },
        {
            "field": "limits.k\x00",
            "message": "the key holds a NUL character or an unpaired surrogate",
            "type": "invalid_text",
        },
        {
            "field": "limits.s\\ud800",  # escaped: a lone surrogate is not UTF-8
            "message": "the key holds a NUL character or an unpaired surrogate",
            "type": "invalid_text",
        },
    ]


def test_nul_in_a_path_parameter_is_422_before_any_route():
    resp = TestClient(_app()).put("/plans/a%00b", json={"tiers": []})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "path"
    assert "NUL" in error["message"]


def test_a_path_percent_encoding_that_is_not_utf8_is_422_not_a_replacement_character():
    # uvicorn decodes the path with errors="replace": /plans/%ff and /plans/%fe would both
    # have been the plan "\ufffd"
    resp = TestClient(_app()).put("/plans/%ff", json={"tiers": []})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {
            "field": "path",
            "message": "the path holds a percent-encoding that is not UTF-8 text (such as %ff)",
            "type": "invalid_text",
        }
    ]


def test_a_query_percent_encoding_that_is_not_utf8_is_422_naming_each_parameter():
    app = _app()

    @app.get("/echo")
    async def echo(unit: str) -> dict[str, str]:
        return {"unit": unit}

    client = TestClient(app)
    assert client.get("/echo?unit=%C3%A9+x").json() == {"unit": "é x"}
    resp = client.get("/echo?unit=%ff&other=ok&b%fead=1")
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    message = "the {} holds a percent-encoding that is not UTF-8 text"
    assert [(d["field"], d["message"], d["type"]) for d in error["details"]] == [
        ("query.unit", message.format("value"), "invalid_text"),
        ("query.b\ufffdad", message.format("name"), "invalid_text"),
    ]
