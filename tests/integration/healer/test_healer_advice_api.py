"""``POST /api/healing/advice`` and ``GET /api/healing/stats`` on real PostgreSQL, Redis and
broker: the advice for each kind, its record on finops.healing.v1, abort alerts, bad input as
4xx. (Outcomes, the stats and a restart: test_healer_outcomes.py.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from healer_helpers import auth, healer, settings_for

from finops.common.kafka import read_topic
from finops.common.topics import ALERTS, HEALING
from finops.healer.settings import HealerSettings

pytestmark = pytest.mark.integration


def error_data(**error: Any) -> dict[str, Any]:
    return {
        "task_type": "summarize",
        "provider": "openai",
        "model": "gpt-4o",
        "error": {"message": "", **error},
    }


@pytest.fixture(scope="module")
def settings(infra: Any, tmp_path_factory: Any) -> HealerSettings:
    base = settings_for(infra, tmp_path_factory.mktemp("healer-advice"))
    name = f"healer-advice-{uuid.uuid4().hex[:8]}"
    return base.model_copy(
        update={"effectiveness_checkpoint_name": name, "effectiveness_checkpoint_interval_s": 0.2}
    )


@pytest.fixture(scope="module")
async def client(settings: HealerSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with healer(settings) as http:
        yield http


async def advise(client: httpx.AsyncClient, body: dict[str, Any], role: str = "agent") -> Any:
    answer = await client.post("/api/healing/advice", json=body, headers=auth(role))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def on_topic(settings: HealerSettings, topic: str, key: str, value: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []
    async for record in read_topic(
        settings, topic, idle_s=30, timeout_s=30, until=lambda: bool(found)
    ):
        row = json.loads(record.value)
        if row.get(key) == value or row.get("details", {}).get(key) == value:
            found.append(row)
    assert found, f"no record with {key}={value} on {topic}"
    return found[0]


async def test_a_rate_limit_waits_at_least_the_stated_wait_and_is_published(
    client: httpx.AsyncClient, settings: HealerSettings
) -> None:
    body = error_data(status_code=429, headers={"retry-after": "7"}, message="Rate limit reached")
    answer = await advise(client, body)
    assert (answer["kind"], answer["retryable"], answer["breaker"]) == ("rate_limit", True, None)
    assert answer["remedy"]["action"] == "wait" and answer["remedy"]["delay_ms"] >= 7000
    assert answer["reason"]
    record = await on_topic(settings, HEALING.name, "advice_id", answer["advice_id"])
    # agent_id defaults to the caller: the token's user
    assert (record["agent_id"], record["rule"], record["stated_wait_ms"]) == (
        "agent-1",
        "rate_limit_message",
        7000,
    )


async def test_a_stated_wait_too_large_for_a_float_is_advised_as_a_day(
    client: httpx.AsyncClient, settings: HealerSettings
) -> None:
    # "retry-after: 1e308" is 1e311 ms, infinite as a float: the answer was a 500
    body = error_data(status_code=429, headers={"retry-after": "1e308"}, message="Slow down")
    answer = await advise(client, body)
    assert (answer["kind"], answer["remedy"]["action"]) == ("rate_limit", "wait")
    assert answer["remedy"]["delay_ms"] >= 86_400_000
    record = await on_topic(settings, HEALING.name, "advice_id", answer["advice_id"])
    assert record["stated_wait_ms"] == 86_400_000


@pytest.mark.parametrize(
    ("error", "request_", "action", "checks"),
    [
        (
            {"status_code": 400, "message": "This model's maximum context length is 128000 tokens"},
            {"input_tokens": 150000, "max_tokens": 4000},
            "trim",
            {"max_input_tokens": 124000},
        ),
        (
            {"status_code": 429, "type": "insufficient_quota", "message": "You exceeded your "
             "current quota, please check your plan and billing details."},
            None,
            "fallback",
            {"provider": "anthropic"},
        ),
        (
            {"status_code": 500, "type": "model_error",
             "message": "The model produced invalid content."},
            None,
            "repair",
            {"params": {"response_format": {"type": "json_object"}, "temperature": 0.0}},
        ),
    ],
)  # fmt: skip
async def test_each_kind_gets_its_remedy(
    client: httpx.AsyncClient,
    error: dict[str, Any],
    request_: dict[str, Any] | None,
    action: str,
    checks: dict[str, Any],
) -> None:
    body = error_data(**error)
    if request_:
        body["request"] = request_
    remedy = (await advise(client, body))["remedy"]
    assert remedy["action"] == action
    assert {key: remedy[key] for key in checks} == checks


async def test_an_abort_raises_an_alert(
    client: httpx.AsyncClient, settings: HealerSettings
) -> None:
    answer = await advise(client, error_data(status_code=401, message="Incorrect API key"))
    assert (answer["kind"], answer["remedy"]["action"]) == ("auth", "abort")
    alert = await on_topic(settings, ALERTS.name, "advice_id", answer["advice_id"])
    assert (alert["kind"], alert["source"], alert["subject"]) == (
        "healing_abort",
        "healer",
        "openai/gpt-4o",
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"provider": "openai", "model": "m", "error": {"message": ""}}, 422, "validation_error"),
        ({**error_data(), "attempt": True}, 422, "validation_error"),
        ({**error_data(), "surprise": 1}, 422, "validation_error"),
        (error_data(status_code=99), 422, "validation_error"),
        (error_data(message="nul\x00"), 422, "validation_error"),
    ],
)
async def test_bad_advice_requests_get_a_4xx_with_a_code(
    client: httpx.AsyncClient, body: Any, status: int, code: str
) -> None:
    answer = await client.post("/api/healing/advice", json=body, headers=auth("agent"))
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


async def test_a_control_character_in_a_name_is_refused_as_ingest_refuses_it(
    client: httpx.AsyncClient,
) -> None:
    body = {**error_data(type="rate\nlimit"), "task_type": "sum\x1b[2Jmarize", "team": "a\tb"}
    answer = await client.post("/api/healing/advice", json=body, headers=auth("agent"))
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert sorted((d["field"], d["type"]) for d in error["details"]) == [
        ("error.type", "control_character"),
        ("task_type", "control_character"),
        ("team", "control_character"),
    ]
    # the message is free text: a stack trace keeps its line breaks
    await advise(client, error_data(message="Traceback:\n  line 1\n\x1b[31mboom"))


async def test_advice_and_stats_need_their_scopes(client: httpx.AsyncClient) -> None:
    anonymous = await client.post("/api/healing/advice", json=error_data())
    broken = await client.post(
        "/api/healing/advice",
        content=b"{not json",
        headers={**auth("agent"), "content-type": "application/json"},
    )
    agent_stats = await client.get("/api/healing/stats", headers=auth("agent"))
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "not_authenticated")
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_json")
    assert (agent_stats.status_code, agent_stats.json()["error"]["code"]) == (
        403,
        "insufficient_scope",
    )
