"""A small simulated fleet for `finops demo`: agents ask the optimizer, call, report.

Two models with prices from genai-prices, four task types: on two of them the cheap model
is as good as the expensive one, on two it is not. The agents use the SDK end to end (an
API key exchanged for tokens, recommendations, batched events); the optimizer learns online
which tasks can take the cheap model.

Seeded: from a clean start (no earlier run's state in the data folder) every run prints the
same figures. Timing must not change a decision, so the fleet works in rounds: each round's
recommendations are asked while no event is in flight (the previous round's events all
taken in, checked against the optimizer's event count); each agent's events are then
delivered in turn (one agent's events share a partition, so the optimizer learns from them in
one order); and every recommendation carries a seed (the demo's seed and its sequence
number), so its random draw does not depend on what other requests drew.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from finops.cli.stack import StackError
from finops.client import AsyncFinOpsClient
from finops.common.events import Usage, price_call

SEED = 42
#: calls per round: recommendations asked against the same learned state
ROUND = 100
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


@dataclass
class _Call:
    """One simulated LLM call, recorded once its round's recommendations are all asked."""

    task: str
    team: str
    model: str
    usage: dict[str, int]
    latency_ms: float
    quality: float
    decision: dict[str, Any] | None = None


@dataclass
class _Tally:
    """This run's own figures (the platform's analytics also hold earlier runs)."""

    picks: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    quality_sum: float = 0.0
    spend: float = 0.0
    spend_if_best: float = 0.0

    def add(self, call: _Call) -> None:
        self.picks[call.task].append(call.model)
        self.quality_sum += call.quality
        usage = Usage(**call.usage)
        self.spend += price_call("openai", call.model, usage).total_usd or 0.0
        self.spend_if_best += price_call("openai", "gpt-4o", usage).total_usd or 0.0


async def _agent_clients(stack: Any, operator: str) -> list[tuple[AsyncFinOpsClient, str]]:
    """An SDK client (with an API key of its own) and the team of each agent."""
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
    return clients


def _first_calls(clients: list[tuple[AsyncFinOpsClient, str]]) -> list[list[_Call]]:
    """Each model once per task type, so the optimizer knows both arms everywhere."""
    out: list[list[_Call]] = [[] for _ in clients]
    pairs = [(task, model) for task in TRUTH for model in TRUTH[task]]
    for n, (task, model) in enumerate(pairs):
        usage = {"input_tokens": 800, "output_tokens": 200}
        out[n % len(clients)].append(
            _Call(task, clients[n % len(clients)][1], model, usage, 800.0, 1.0)
        )
    return out


async def _ask_round(
    clients: list[tuple[AsyncFinOpsClient, str]],
    calls: range,
    rng: random.Random,
    tally: _Tally,
) -> list[list[_Call]]:
    """Ask the optimizer about every call of one round and simulate each call's outcome;
    returns each client's calls, to be recorded once the round's questions are all asked."""
    tasks = list(TRUTH)
    out: list[list[_Call]] = [[] for _ in clients]
    for i in calls:
        client, team = clients[i % len(clients)]
        task = tasks[rng.randrange(len(tasks))]
        input_tokens = rng.randint(300, 3000)
        rec = await client.recommend(
            task, {"input_tokens": input_tokens}, team=team, seed=_request_seed(i)
        )
        model = rec["model"]
        quality = float(rng.random() < TRUTH[task][model])
        usage = {"input_tokens": input_tokens, "output_tokens": rng.randint(100, 400)}
        mean, sd = LATENCY_MS[model]
        latency_ms = max(50.0, rng.gauss(mean, sd))
        decision = {"recommendation_id": rec["recommendation_id"], "propensity": rec["propensity"]}
        call = _Call(task, team, model, usage, latency_ms, quality, decision)
        out[i % len(clients)].append(call)
        tally.add(call)
    return out


def _request_seed(sequence: int) -> int:
    return SEED * 1_000_000 + sequence


class _Delivery:
    """Delivers the fleet's calls one agent at a time and waits until the optimizer took
    each agent's events in, so it always learns from them in the same order."""

    def __init__(
        self,
        opt: httpx.AsyncClient,
        clients: list[tuple[AsyncFinOpsClient, str]],
        optimizer_log: Path,
        timeout_s: float = 60.0,
    ) -> None:
        self.opt = opt
        self.clients = clients
        self.optimizer_log = optimizer_log
        self.timeout_s = timeout_s
        self.baseline = 0  # events the optimizer had taken in before this run
        self.sent = 0

    async def start(self) -> None:
        self.baseline = await _events_taken(self.opt)

    async def deliver(self, calls: list[list[_Call]]) -> None:
        """``calls[i]``: the calls of ``clients[i]``, in order."""
        for (client, _), mine in zip(self.clients, calls, strict=True):
            for call in mine:
                await client.record_call(
                    task_type=call.task,
                    provider="openai",
                    model=call.model,
                    team=call.team,
                    usage=call.usage,
                    latency_ms=call.latency_ms,
                    quality=call.quality,
                    decision=call.decision,
                )
            await client.flush(timeout=60)
            self.sent += len(mine)
            await self._caught_up()

    async def _caught_up(self) -> None:
        """Wait until the optimizer has taken in every event this run sent."""
        deadline = time.monotonic() + self.timeout_s
        while (taken := await _events_taken(self.opt) - self.baseline) < self.sent:
            if time.monotonic() > deadline:
                raise StackError(
                    f"the optimizer took in {taken:,} of the {self.sent:,} events this run sent "
                    f"within {self.timeout_s:g} s; see {self.optimizer_log}"
                )
            await asyncio.sleep(0.05)


async def run_fleet(stack: Any, calls: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """Drive ``calls`` LLM calls through the SDK; return what the platform learned."""
    rng = random.Random(SEED)
    operator = await _operator_token(stack)
    clients = await _agent_clients(stack, operator)
    echo(f"{len(clients)} agents with API keys; {calls:,} calls over {len(TRUTH)} task types")

    tally = _Tally()
    opt = httpx.AsyncClient(
        base_url=stack.service_url("optimizer"),
        headers={"Authorization": f"Bearer {operator}"},
        timeout=30,
    )
    delivery = _Delivery(opt, clients, stack.root / "logs" / "optimizer.log")
    try:
        await delivery.start()
        if delivery.baseline:
            echo(
                f"the optimizer has already learned from {delivery.baseline:,} events of earlier "
                "runs (kept in the data folder): the figures differ from a clean start's "
                "(`make clean` starts clean)"
            )
        await delivery.deliver(_first_calls(clients))
        for start in range(0, calls, ROUND):
            numbers = range(start, min(calls, start + ROUND))
            await delivery.deliver(await _ask_round(clients, numbers, rng, tally))
            echo(f"{min(calls, start + ROUND):,}/{calls:,} calls")
        for client, _ in clients:
            await client.close(timeout=60)
        by_model = (await opt.get("/api/stats/model")).json()["totals"]
        summary = (await opt.get("/api/stats/summary")).json()
        final = {}
        for n, task in enumerate(TRUTH):
            params: dict[str, str | int] = {"task_type": task, "seed": _request_seed(calls + n)}
            final[task] = (await opt.get("/api/recommendations", params=params)).json()
    finally:
        await opt.aclose()
    return {
        "picks": {t: Counter(p[-100:]) for t, p in tally.picks.items()},
        "final": final,
        "by_model": by_model,
        "summary": summary,
        "quality": tally.quality_sum / max(1, calls),
        "spend": tally.spend,
        "spend_if_best": tally.spend_if_best,
        "events": delivery.sent,
    }


async def _events_taken(opt: httpx.AsyncClient) -> int:
    resp = await opt.get("/api/stats/summary")
    resp.raise_for_status()
    return int(resp.json()["events"])
