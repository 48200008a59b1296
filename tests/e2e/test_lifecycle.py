"""An agent's whole life on the real local stack, through every service in turn.

register → login → API key → ingest → the recommendation changes (an experiment's winner is
promoted) → healing advice → experiment decided and promoted → logout makes the login token
fail on every service.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cli_stack import finops, operator_token, url_of

from finops.client import AsyncFinOpsClient, RequestRefused

pytestmark = pytest.mark.e2e

STRONG, CHEAP = "gpt-4o", "gpt-4o-mini"
DEADLINE_S = 90


async def poll(fetch, accept, what: str, timeout: float = DEADLINE_S) -> Any:
    """``await fetch()`` until ``accept(value)``; fails naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}: {value}")
        await asyncio.sleep(0.3)  # a polling period between two looks, not a synchronisation


def llm_call(agent: str, task_type: str) -> dict[str, Any]:
    """One agent.llm_call event in the envelope ingest takes."""
    return {
        "id": str(uuid.uuid4()),
        "type": "agent.llm_call",
        "source": agent,
        "time": datetime.now(UTC).isoformat(),
        "specversion": "1.0",
        "data": {
            "agent_id": agent,
            "task_type": task_type,
            "provider": "openai",
            "model": STRONG,
            "usage": {"input_tokens": 100, "output_tokens": 10},
            "latency_ms": 500.0,
            "success": True,
        },
    }


async def record(client: AsyncFinOpsClient, task_type: str, model: str, rng, **tags) -> None:
    await client.record_call(
        task_type=task_type,
        provider="openai",
        model=model,
        usage={"input_tokens": rng.randint(800, 1200), "output_tokens": rng.randint(80, 120)},
        latency_ms=600.0,
        quality=1.0,
        **tags,
    )


async def test_an_agents_lifecycle_over_every_service(stack_env):
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        await _lifecycle(stack_env)
    finally:
        down = finops("down", env=stack_env)
        assert down.returncode == 0, down.stderr


async def _lifecycle(env: dict[str, str]) -> None:
    urls = {s: url_of(env, s) for s in ("auth", "ingest", "optimizer", "healer", "experiments")}
    _, operator = operator_token(env)
    op = httpx.AsyncClient(headers={"Authorization": f"Bearer {operator}"}, timeout=30)
    anon = httpx.AsyncClient(timeout=30)
    name, task_type = f"life-{uuid.uuid4().hex[:8]}", f"lifecycle-{uuid.uuid4().hex[:6]}"
    rng = random.Random(13)

    # register, log in, and get an API key made by the operator
    password = "a lifecycle password " + uuid.uuid4().hex
    user = await anon.post(
        f"{urls['auth']}/api/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert user.status_code == 201, user.text
    login = await anon.post(
        f"{urls['auth']}/api/auth/login", json={"login": name, "password": password}
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    me = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    key = await op.post(
        f"{urls['auth']}/api/auth/api-keys",
        json={"name": f"{name} key", "user_id": user.json()["id"]},
    )
    assert key.status_code == 201, key.text
    agent = AsyncFinOpsClient(
        agent_id=name,
        api_key=key.json()["key"],
        **{f"{service}_url": url for service, url in urls.items()},
        linger_s=0.05,
    )

    recommendations = f"{urls['optimizer']}/api/recommendations"
    before = await me.get(recommendations, params={"task_type": task_type})
    assert (before.status_code, before.json()["error"]["code"]) == (404, "no_arms")

    # ingest (with the API key): the strong model only; the optimizer recommends it
    for _ in range(20):
        await record(agent, task_type, STRONG, rng)
    await agent.flush(timeout=60)
    first = await poll(
        lambda: me.get(recommendations, params={"task_type": task_type, "seed": 1}),
        lambda r: r.status_code == 200,
        "a recommendation once the optimizer read the events",
    )
    assert first.json()["model"] == STRONG

    # healing advice for a rate limit: wait at least what the provider asked
    advice = await me.post(
        f"{urls['healer']}/api/healing/advice",
        json={
            "task_type": task_type,
            "provider": "openai",
            "model": STRONG,
            "error": {
                "status_code": 429,
                "message": "Rate limit reached. Please try again in 6s.",
                "headers": {"retry-after": "6"},
            },
        },
    )
    assert advice.status_code == 200, advice.text
    assert advice.json()["kind"] == "rate_limit"
    assert advice.json()["remedy"]["action"] == "wait"
    assert advice.json()["remedy"]["delay_ms"] >= 6000

    experiment_id = await _experiment_decided_and_promoted(op, agent, urls, task_type, rng)
    promoted = await me.get(recommendations, params={"task_type": task_type, "seed": 2})
    assert promoted.json()["model"] == CHEAP  # the recommendation changed: the winner's
    assert experiment_id in promoted.json()["reason"]
    await agent.close(timeout=60)

    await _logout_fails_everywhere(me, anon, urls, name, task_type, experiment_id)
    await op.aclose()


async def _experiment_decided_and_promoted(
    op: httpx.AsyncClient, agent: AsyncFinOpsClient, urls, task_type: str, rng
) -> str:
    """A cheaper variant (B) against the strong model (A), decided for B, then pinned by the
    optimizer; returns the experiment's id."""
    body = {
        "name": f"life-{task_type}",
        "task_type": task_type,
        "variants": [
            {"name": "A", "model": STRONG, "provider": "openai"},
            {"name": "B", "model": CHEAP, "provider": "openai"},
        ],
        "min_samples": 10,
    }
    experiments = f"{urls['experiments']}/api/experiments"
    created = await poll(
        lambda: op.post(experiments, json=body),
        lambda r: r.status_code == 201,
        "the experiments service to know the task type",
    )
    experiment_id = created.json()["id"]
    started = await op.post(f"{experiments}/{experiment_id}/start")
    assert started.status_code == 200, started.text

    assigned_units = 0
    for unit in range(80):
        try:
            assigned = await agent.assign(experiment_id, unit=f"unit-{unit}")
        except RequestRefused as refused:
            # The SDK sends events as they come, so the experiment can decide (min_samples
            # 10) while units are still being assigned: a decided experiment assigns no more.
            assert refused.code == "experiment_not_running", refused
            break
        await record(agent, task_type, assigned["model"], rng, experiment=assigned)
        assigned_units += 1
    assert assigned_units >= 2 * body["min_samples"], assigned_units
    await agent.flush(timeout=60)
    results = await poll(
        lambda: op.get(f"{experiments}/{experiment_id}/results"),
        lambda r: r.json()["status"] != "running",
        "the experiment's decision",
    )
    assert results.json()["status"] == "decided", results.text
    assert results.json()["decision"]["winner"] == "B"
    await poll(
        lambda: op.get(f"{urls['optimizer']}/api/recommendations", params={"task_type": task_type}),
        lambda r: experiment_id in r.json().get("reason", ""),
        "the optimizer to pin the winner",
    )
    return experiment_id


async def _logout_fails_everywhere(
    me: httpx.AsyncClient, anon: httpx.AsyncClient, urls, name: str, task_type: str, exp: str
) -> None:
    """Every service takes the login token before the logout and refuses it after."""
    requests = {
        "auth": ("GET", f"{urls['auth']}/api/users/me", None),
        "ingest": ("POST", f"{urls['ingest']}/api/events", [llm_call(name, task_type)]),
        "optimizer": (
            "GET",
            f"{urls['optimizer']}/api/recommendations?task_type={task_type}",
            None,
        ),
        "healer": ("GET", f"{urls['healer']}/api/healing/circuits", None),
        "experiments": (
            "GET",
            f"{urls['experiments']}/api/experiments/{exp}/assignment?unit=u",
            None,
        ),
    }
    for service, (method, url, body) in requests.items():
        resp = await me.request(method, url, json=body)
        # the decided experiment no longer assigns (409), but the token was accepted
        assert resp.status_code in (200, 202, 409), (service, resp.status_code, resp.text)

    out = await me.post(f"{urls['auth']}/api/auth/logout")
    assert out.status_code == 204, out.text

    for service, (method, url, body) in requests.items():
        resp = await me.request(method, url, json=body)
        assert resp.status_code == 401, (service, resp.status_code, resp.text)
        assert resp.json()["error"]["code"] == "invalid_token", (service, resp.text)
    await me.aclose()
    await anon.aclose()
