"""Optimizer throughput (topic -> model update) and recommendation API latency, in one run.

Starts its own stack (PostgreSQL, Redis, broker, auth, optimizer) on free ports in a temporary
folder, then measures:

1. the raw aiokafka consume rate of the same records (baseline, this process);
2. the optimizer's rate from topic to model update (analytics, policy, budgets, anomaly
   detection, checkpoints), read from its own Prometheus counter;
3. GET /api/recommendations latency at a fixed 500 requests/s from a load generator on
   loopback, next to GET /healthz of the same server at the same rate (baseline).

Targets (issue #5): >= 5,000 events/s for one worker; recommendation p99 <= 10 ms at 500/s.

    .venv/bin/python bench/optimizer.py [--events 50000] [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
from _harness import ServiceBench

from finops.common.events import llm_call_event
from finops.common.topics import AGENT_COST

MODELS = [("gpt-4o", 0.90), ("gpt-4o-mini", 0.86), ("gpt-4.1-nano", 0.70)]
TASKS = [f"task-{i}" for i in range(20)]
#: the counter of events done, from the service's /metrics
SERIES = 'finops_optimizer_events_total{outcome="applied",topic="agent.cost.v1"}'
QUICK_ARGS = ["--events", "2000", "--seconds", "1", "--rate", "100"]


def cost_event(i: int, rng: random.Random, start: datetime) -> dict:
    model, quality = MODELS[i % len(MODELS)]
    data = {
        "agent_id": f"agent-{i % 50}",
        "team": f"team-{i % 5}",
        "task_type": TASKS[i % len(TASKS)],
        "provider": "openai",
        "model": model,
        "usage": {"input_tokens": 500 + i % 700, "output_tokens": 120},
        "cost_usd": 0.0001 * (1 + MODELS.index((model, quality))),
        "cost_source": "reported",
        "latency_ms": 300 + (i * 7) % 900,
        "success": True,
        "quality": float(rng.random() < quality),
        "features": {"input_tokens": float(500 + i % 700)},
    }
    return llm_call_event(data, time=start + timedelta(milliseconds=20 * i))


def cost_events(n: int) -> Iterator[dict]:
    rng = random.Random(0)
    start = datetime.now(UTC) - timedelta(hours=1)
    return (cost_event(i, rng, start) for i in range(n))


async def recommend(session: aiohttp.ClientSession, url: str, i: int) -> bool:
    params = {"task_type": TASKS[i % len(TASKS)], "input_tokens": str(300 + i % 900)}
    async with session.get(f"{url}/api/recommendations", params=params) as r:
        await r.read()
        return r.status == 200


BENCH = ServiceBench(
    "optimizer",
    SERIES,
    AGENT_COST.name,
    cost_events,
    recommend,
    "bench/optimizer #5",
    "optimizer, topic → model update, one worker",
    "GET /api/recommendations",
)


def main() -> int:
    return BENCH.main(__doc__, events=50_000)


if __name__ == "__main__":
    sys.exit(main())
