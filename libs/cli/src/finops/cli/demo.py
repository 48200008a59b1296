"""A small simulated fleet for `finops demo`: agents ask the optimizer, call, report.

Two models with prices from genai-prices, four task types: on two of them the cheap model
is as good as the expensive one, on two it is not. The agents use the SDK end to end (an
API key exchanged for tokens, recommendations, batched events); the optimizer learns online
which tasks can take the cheap model. Seeded, so every run tells the same story.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import httpx

from finops.client import AsyncFinOpsClient
from finops.common.events import Usage, price_call

#: task type -> true success probability per model
TRUTH = {
    "summarize": {"gpt-4o": 0.92, "gpt-4o-mini": 0.91},
    "extract": {"gpt-4o": 0.95, "gpt-4o-mini": 0.94},
    "reasoning": {"gpt-4o": 0.88, "gpt-4o-mini": 0.55},
    "code": {"gpt-4o": 0.86, "gpt-4o-mini": 0.60},
}
LATENCY_MS = {"gpt-4o": (1100.0, 250.0), "gpt-4o-mini": (550.0, 120.0)}
AGENTS = (("support-bot", "support"), ("research-bot", "research"))


async def _operator_token(stack: Any) -> str:
    from finops.auth.admin import create_user
    from finops.auth.settings import AuthSettings
    from finops.common.auth.scopes import Role

    name = "demo-operator-" + uuid.uuid4().hex[:6]
    password = "demo operator " + uuid.uuid4().hex
    await create_user(
        AuthSettings(database_url=stack.database_url),
        name,
        f"{name}@example.com",
        password,
        Role.OPERATOR,
    )
    async with httpx.AsyncClient(base_url=stack.service_url("auth"), timeout=30) as http:
        resp = await http.post("/api/auth/login", json={"login": name, "password": password})
        resp.raise_for_status()
        return str(resp.json()["access_token"])


async def _agent_api_key(stack: Any, operator: str, name: str) -> str:
    password = "demo agent " + uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=stack.service_url("auth"), timeout=30) as http:
        user = await http.post(
            "/api/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": password},
        )
        user.raise_for_status()
        key = await http.post(
            "/api/auth/api-keys",
            json={"name": f"{name} key", "user_id": user.json()["id"]},
            headers={"Authorization": f"Bearer {operator}"},
        )
        key.raise_for_status()
        return str(key.json()["key"])


async def run_fleet(stack: Any, calls: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """Drive ``calls`` LLM calls through the SDK; return what the platform learned."""
    rng = random.Random(42)
    operator = await _operator_token(stack)
    suffix = uuid.uuid4().hex[:4]
    clients = []
    for agent, team in AGENTS:
        name = f"{agent}-{suffix}"
        key = await _agent_api_key(stack, operator, name)
        client = AsyncFinOpsClient(
            ingest_url=stack.service_url("ingest"),
            auth_url=stack.service_url("auth"),
            optimizer_url=stack.service_url("optimizer"),
            api_key=key,
            agent_id=name,
            batch_size=100,
            linger_s=0.05,
        )
        clients.append((client, team))
    echo(f"{len(clients)} agents with API keys; {calls:,} calls over {len(TRUTH)} task types")

    picks: dict[str, list[str]] = defaultdict(list)
    spend = 0.0
    spend_if_best = 0.0
    quality_sum = 0.0
    tasks = list(TRUTH)
    opt = httpx.AsyncClient(
        base_url=stack.service_url("optimizer"),
        headers={"Authorization": f"Bearer {operator}"},
        timeout=30,
    )
    try:
        # Seed: each model once per task, so the optimizer knows both arms.
        sent = 0
        for task in tasks:
            for model in TRUTH[task]:
                client, team = clients[sent % len(clients)]
                await client.record_call(
                    task_type=task,
                    provider="openai",
                    model=model,
                    team=team,
                    usage={"input_tokens": 800, "output_tokens": 200},
                    latency_ms=800.0,
                    quality=1.0,
                )
                sent += 1
        round_size = 100
        for start in range(0, calls, round_size):
            for client, _ in clients:
                await client.flush(timeout=60)
            await _caught_up(opt, sent)
            for i in range(start, min(calls, start + round_size)):
                client, team = clients[i % len(clients)]
                task = tasks[rng.randrange(len(tasks))]
                input_tokens = rng.randint(300, 3000)
                rec = await client.recommend(task, {"input_tokens": input_tokens}, team=team)
                model = rec["model"]
                picks[task].append(model)
                quality = float(rng.random() < TRUTH[task][model])
                usage = {"input_tokens": input_tokens, "output_tokens": rng.randint(100, 400)}
                mean, sd = LATENCY_MS[model]
                await client.record_call(
                    task_type=task,
                    provider="openai",
                    model=model,
                    team=team,
                    usage=usage,
                    latency_ms=max(50.0, rng.gauss(mean, sd)),
                    quality=quality,
                    decision={
                        "recommendation_id": rec["recommendation_id"],
                        "propensity": rec["propensity"],
                    },
                )
                sent += 1
                quality_sum += quality
                spend += price_call("openai", model, Usage(**usage)).total_usd or 0.0
                spend_if_best += price_call("openai", "gpt-4o", Usage(**usage)).total_usd or 0.0
            echo(f"{min(calls, start + round_size):,}/{calls:,} calls")
        for client, _ in clients:
            await client.close(timeout=60)
        await _caught_up(opt, sent)
        by_model = (await opt.get("/api/stats/model")).json()["totals"]
        summary = (await opt.get("/api/stats/summary")).json()
        final = {
            task: (await opt.get("/api/recommendations", params={"task_type": task})).json()
            for task in tasks
        }
    finally:
        await opt.aclose()
    return {
        "picks": {t: Counter(p[-100:]) for t, p in picks.items()},
        "final": final,
        "by_model": by_model,
        "summary": summary,
        "quality": quality_sum / max(1, calls),
        "spend": spend,
        "spend_if_best": spend_if_best,
        "events": sent,
    }


async def _caught_up(opt: httpx.AsyncClient, sent: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = (await opt.get("/api/stats/summary")).json()
        if summary.get("events", 0) >= sent:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the optimizer did not take in {sent} events within {timeout:.0f}s")
