"""Ingest against a real broker and Redis: accepted events all arrive, bad ones never do."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from support import TokenFactory, ids_on_topic, llm_call, team_mismatch_detail

from finops.cli.stack.ports import free_port
from finops.common.auth import TokenVerifier, revoke
from finops.common.kafka import read_topic
from finops.common.settings import CommonSettings
from finops.common.topics import AGENT_COST, AGENT_ERROR
from finops.ingest.app import create_app
from finops.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def ingest(infra_env, tmp_path):
    tokens = TokenFactory()
    settings = IngestSettings(data_dir=tmp_path)
    redis = aioredis.from_url(settings.redis_url)
    app = create_app(settings, verifier=TokenVerifier(settings, redis, tokens.keys))
    async with LifespanManager(app, startup_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            client.tokens = tokens  # type: ignore[attr-defined]
            client.redis = redis  # type: ignore[attr-defined]
            client.kafka = CommonSettings(  # type: ignore[attr-defined]
                kafka_bootstrap=infra_env.kafka_bootstrap
            )
            yield client
    await redis.aclose()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_event(agent: str, **identity) -> dict:
    event = llm_call(agent)
    event["type"] = "agent.error"
    event["data"] = {
        **identity,
        "agent_id": agent,
        "task_type": "summarize",
        "provider": "openai",
        # not a model the healer's tests advise on: a healer started later in the session
        # reads these from the topic's beginning, and they would open that model's breaker
        "model": "gpt-4o-ingest-test",
        "error": {"kind": "rate_limit", "status_code": 429, "message": "slow down"},
        "attempt": 2,
    }
    return event


async def test_accepted_events_are_all_on_their_topics(ingest):
    agent = "agent-" + uuid.uuid4().hex[:8]
    token = ingest.tokens.token(username=agent)
    calls = [llm_call(agent) for _ in range(1200)]
    errors = [error_event(agent) for _ in range(30)]
    for start in range(0, len(calls), 400):
        resp = await ingest.post(
            "/api/events", json=calls[start : start + 400], headers=auth(token)
        )
        assert resp.status_code == 202, resp.text
        assert resp.json() == {"accepted": 400}
    resp = await ingest.post("/api/events", json={"events": errors}, headers=auth(token))
    assert resp.json() == {"accepted": 30}

    want_calls = {e["id"] for e in calls}
    on_cost = await ids_on_topic(ingest.kafka, AGENT_COST.name, expect=want_calls)
    assert want_calls <= set(on_cost)
    want_errors = {e["id"] for e in errors}
    on_error = await ids_on_topic(ingest.kafka, AGENT_ERROR.name, expect=want_errors)
    assert want_errors <= set(on_error)
    assert not want_errors & set(on_cost)


async def test_bad_inputs_get_their_4xx_and_never_reach_the_topic(ingest):
    agent = "agent-" + uuid.uuid4().hex[:8]
    token = ingest.tokens.token(username=agent)
    refused: list[str] = []

    async def refuse(body, expected_status, expected_code, headers=None, raw=None):
        if body is not None:
            refused.extend(e["id"] for e in body if isinstance(e, dict) and "id" in e)
        resp = await ingest.post(
            "/api/events",
            content=raw if raw is not None else json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **(headers if headers is not None else auth(token)),
            },
        )
        assert resp.status_code == expected_status, resp.text
        assert resp.json()["error"]["code"] == expected_code
        return resp.json()["error"]

    negative = llm_call(agent)
    negative["data"]["usage"]["input_tokens"] = -5
    err = await refuse([llm_call(agent), negative], 422, "invalid_events")
    assert {(d["index"], d["field"]) for d in err["details"]} == {(1, "data.usage.input_tokens")}
    await refuse([llm_call(agent, latency_ms="fast")], 422, "invalid_events")
    unknown = llm_call(agent)
    unknown["type"] = "agent.unknown"
    await refuse([unknown], 422, "invalid_events")
    missing = llm_call(agent)
    del missing["data"]["model"]
    err = await refuse([missing], 422, "invalid_events")
    assert err["details"][0]["field"] == "data.model"
    await refuse(None, 400, "invalid_json", raw=b"{not json")
    await refuse([llm_call(agent)], 401, "not_authenticated", headers={})
    await refuse([llm_call("someone-else")], 403, "agent_mismatch")
    spoofed = llm_call(agent)
    spoofed["source"] = "someone-else"
    err = await refuse([spoofed], 403, "source_mismatch")
    assert err["details"] == [{"index": 0, "field": "source", "source": "someone-else"}]
    await refuse([llm_call(agent) for _ in range(1001)], 413, "batch_too_large")
    err = await refuse([{}] * 100_000, 413, "batch_too_large")  # counted, not validated
    assert err["details"] == {"max_events": 1000, "events": 100_000}
    far_future = llm_call(agent)
    far_future["time"] = "9999-12-31T00:00:00Z"
    ancient = llm_call(agent)
    ancient["time"] = "2001-01-01T00:00:00Z"
    err = await refuse([llm_call(agent), far_future, ancient], 422, "invalid_events")
    assert [(d["index"], d["field"], d["type"]) for d in err["details"]] == [
        (1, "time", "time_in_future"),
        (2, "time", "time_too_old"),
    ]
    no_scope = ingest.tokens.token(username=agent, scopes=["stats:read"])
    await refuse([llm_call(agent)], 403, "insufficient_scope", headers=auth(no_scope))

    big = [llm_call(agent, config={"prompt_version": "x" * 100}) for _ in range(1000)]
    big_body = json.dumps(big).encode() + b" " * (1024 * 1024)
    refused.extend(e["id"] for e in big)
    resp = await ingest.post(
        "/api/events", content=big_body, headers={"Content-Type": "application/json", **auth(token)}
    )
    assert resp.status_code == 413

    sentinel = llm_call(agent)
    assert (
        await ingest.post("/api/events", json=[sentinel], headers=auth(token))
    ).status_code == 202
    seen = set(await ids_on_topic(ingest.kafka, AGENT_COST.name, expect={sentinel["id"]}))
    assert sentinel["id"] in seen
    assert not set(refused) & seen


async def test_an_agent_bound_to_its_teams_names_only_them_in_its_events(ingest):
    """A team's budget is spent by the events that name it: an account an admin bound to its
    teams may name only those (403 ``team_mismatch``, nothing of the batch published); an
    unbound account names any team, as before."""
    agent = "agent-" + uuid.uuid4().hex[:8]
    bound = auth(ingest.tokens.token(username=agent, teams=["search"]))
    own = [llm_call(agent, team="search"), llm_call(agent), error_event(agent, team="search")]
    resp = await ingest.post("/api/events", json=own, headers=bound)
    assert (resp.status_code, resp.json()) == (202, {"accepted": 3}), resp.text

    foreign = [
        llm_call(agent, team="search"),
        llm_call(agent, team="finance", cost_usd=0.5),
        error_event(agent, team="finance"),
    ]
    resp = await ingest.post("/api/events", json=foreign, headers=bound)
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "team_mismatch"
    assert resp.json()["error"]["details"] == [
        team_mismatch_detail(1, "finance"),
        team_mismatch_detail(2, "finance"),
    ]

    unbound = auth(ingest.tokens.token(username=agent))
    for_finance = llm_call(agent, team="finance")
    resp = await ingest.post("/api/events", json=[for_finance], headers=unbound)
    assert resp.status_code == 202, resp.text
    want = {own[0]["id"], own[1]["id"], for_finance["id"]}
    on_cost = set(await ids_on_topic(ingest.kafka, AGENT_COST.name, expect=want))
    on_error = set(await ids_on_topic(ingest.kafka, AGENT_ERROR.name, expect={own[2]["id"]}))
    assert want <= on_cost and own[2]["id"] in on_error
    assert not {e["id"] for e in foreign} & (on_cost | on_error)


async def test_a_control_character_in_a_name_is_refused_and_kept_in_free_text(ingest):
    """A name (task type, model, team, an experiment's variant, a config or feature key) holding
    a control character is refused, naming each field; an error's message, a header's value and
    a config's string value are free text and arrive as they were sent."""
    agent = "agent-" + uuid.uuid4().hex[:8]
    token = ingest.tokens.token(username=agent)
    names = [
        llm_call(agent, task_type="sum\nmarize"),
        llm_call(agent, model="gpt-4o\x1b[2J"),
        llm_call(agent, team="ops\tteam", experiment={"id": "exp-1", "variant": "b\x85"}),
        llm_call(agent, config={"te\x7fmp": 1}, features={"len\r": 1.0}),
        llm_call(agent, task_type="nul\x00\n"),  # a NUL anywhere is invalid_text, once
    ]
    resp = await ingest.post("/api/events", json=names, headers=auth(token))
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_events"
    assert [(d["index"], d["field"], d["type"]) for d in error["details"]] == [
        (0, "data.task_type", "control_character"),
        (1, "data.model", "control_character"),
        (2, "data.experiment.variant", "control_character"),
        (2, "data.team", "control_character"),
        (3, "data.config.te\x7fmp", "control_character"),
        (3, "data.features.len\r", "control_character"),
        (4, "data.task_type", "invalid_text"),
    ]
    assert "control character" in error["details"][0]["message"]

    free = error_event(agent)
    free["data"]["error"]["message"] = "line 1\nline 2\t\x1b[31mred\x85"
    free["data"]["error"]["headers"] = {"x-note": "a\tb"}
    text = llm_call(agent, config={"system": "be brief\nand kind"})
    resp = await ingest.post("/api/events", json=[free], headers=auth(token))
    assert resp.status_code == 202, resp.text
    resp = await ingest.post("/api/events", json=[text], headers=auth(token))
    assert resp.status_code == 202, resp.text
    found: list[dict] = []
    async for record in read_topic(
        ingest.kafka, AGENT_ERROR.name, idle_s=120, timeout_s=120, until=lambda: bool(found)
    ):
        value = json.loads(record.value)
        if value["id"] == free["id"]:
            found.append(value)
    [error_record] = found
    assert error_record["data"]["error"]["message"] == "line 1\nline 2\t\x1b[31mred\x85"
    assert error_record["data"]["error"]["headers"] == {"x-note": "a\tb"}
    on_cost = await ids_on_topic(ingest.kafka, AGENT_COST.name, expect={text["id"]})
    assert text["id"] in on_cost and not {e["id"] for e in names} & set(on_cost)


async def test_a_format_character_in_a_name_is_refused_naming_its_code_point(ingest):
    """A bidi override, a zero-width space or a byte order mark in a name passed and was
    stored (only control characters and line separators were refused); a name of any script,
    its spaces included, is taken."""
    agent = "agent-" + uuid.uuid4().hex[:8]
    token = ingest.tokens.token(username=agent)
    names = [
        llm_call(agent, task_type="invoice\u202egpj.exe"),
        llm_call(agent, model="gpt-4o\u200b", features={"\ufefflen": 1.0}),
    ]
    resp = await ingest.post("/api/events", json=names, headers=auth(token))
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_events"
    assert [
        (d["index"], d["field"], d["type"], d["message"].rsplit("; ", 1)[1])
        for d in error["details"]
    ] == [
        (0, "data.task_type", "control_character", "got U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        (
            1,
            "data.features.\ufefflen",
            "control_character",
            "got U+FEFF (ZERO WIDTH NO-BREAK SPACE)",
        ),
        (1, "data.model", "control_character", "got U+200B (ZERO WIDTH SPACE)"),
    ]
    kept = llm_call(agent, task_type="東京\u3000要約", model="gpt\u00a0x")
    resp = await ingest.post("/api/events", json=[kept], headers=auth(token))
    assert resp.status_code == 202, resp.text


async def test_revoked_token_is_refused(ingest):
    agent = "agent-" + uuid.uuid4().hex[:8]
    principal_token = ingest.tokens.token(username=agent)
    ok = await ingest.post("/api/events", json=[llm_call(agent)], headers=auth(principal_token))
    assert ok.status_code == 202
    claims = json.loads(
        __import__("base64").urlsafe_b64decode(principal_token.split(".")[1] + "==")
    )
    await revoke(ingest.redis, claims["jti"], 60)
    resp = await ingest.post("/api/events", json=[llm_call(agent)], headers=auth(principal_token))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_token"  # as docs/events.md lists it
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_write_any_scope_may_send_for_other_agents(ingest):
    token = ingest.tokens.token(username="collector", role="admin")
    resp = await ingest.post(
        "/api/events", json=[llm_call("fleet-a"), llm_call("fleet-b")], headers=auth(token)
    )
    assert resp.status_code == 202


async def test_schemas_are_published(ingest):
    resp = await ingest.get("/api/schemas")
    body = resp.json()
    assert set(body) == {"agent.llm_call", "agent.error"}
    assert "data" in body["agent.llm_call"]["properties"]


async def test_broker_unreachable_gives_503_with_retry_after(infra_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    tokens = TokenFactory()
    settings = IngestSettings(data_dir=tmp_path, publish_timeout_s=1.0)
    redis = aioredis.from_url(settings.redis_url)
    app = create_app(settings, verifier=TokenVerifier(settings, redis, tokens.keys))
    async with LifespanManager(app, startup_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            resp = await client.post(
                "/api/events", json=[llm_call("bot")], headers=auth(tokens.token("bot"))
            )
            ready = await client.get("/readyz")
    await redis.aclose()
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "broker_unavailable"
    assert resp.headers["retry-after"] == "1"
    assert ready.status_code == 503 and ready.json()["checks"]["kafka"].startswith("down")
