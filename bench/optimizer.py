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

import argparse
import asyncio
import json
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
from _figures import Measurement, at_least, at_most, record
from _harness import (
    counter_rate,
    healthz_latency,
    open_loop,
    private_stack,
    raw_consume_rate,
    register_and_login,
)

from finops.common.kafka import make_producer
from finops.common.settings import CommonSettings
from finops.common.topics import AGENT_COST

MODELS = [("gpt-4o", 0.90), ("gpt-4o-mini", 0.86), ("gpt-4.1-nano", 0.70)]
TASKS = [f"task-{i}" for i in range(20)]
#: the counter of events done, from the service's /metrics
SERIES = 'finops_optimizer_events_total{outcome="applied",topic="agent.cost.v1"}'
QUICK_ARGS = ["--events", "2000", "--seconds", "1", "--rate", "100"]


def cost_event(i: int, rng: random.Random, start: datetime) -> dict:
    model, quality = MODELS[i % len(MODELS)]
    agent = f"agent-{i % 50}"
    return {
        "id": str(uuid.uuid4()),
        "type": "agent.llm_call",
        "source": agent,
        "specversion": "1.0",
        "time": (start + timedelta(milliseconds=20 * i)).isoformat(),
        "data": {
            "agent_id": agent,
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
        },
    }


async def produce(bootstrap: str, local: bool, n: int) -> None:
    settings = CommonSettings(kafka_bootstrap=bootstrap, kafka_enable_idempotence=not local)
    producer = make_producer(settings)
    await producer.start()
    rng = random.Random(0)
    start = datetime.now(UTC) - timedelta(hours=1)
    try:
        futures = []
        for i in range(n):
            e = cost_event(i, rng, start)
            futures.append(
                await producer.send(
                    AGENT_COST.name, json.dumps(e).encode(), key=e["data"]["agent_id"].encode()
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def recommendation_latency(url: str, token: str, rate: float, seconds: float) -> dict:
    async def get(session: aiohttp.ClientSession, i: int) -> bool:
        params = {"task_type": TASKS[i % len(TASKS)], "input_tokens": str(300 + i % 900)}
        async with session.get(f"{url}/api/recommendations", params=params) as r:
            await r.read()
            return r.status == 200

    headers = {"Authorization": f"Bearer {token}"}
    return await open_loop(get, rate=rate, seconds=seconds, headers=headers)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    with private_stack(("auth", "optimizer")) as stack:
        url = stack.service_url("optimizer")

        async def run() -> None:
            print(f"producing {args.events:,} cost events …", file=sys.stderr)
            watcher = asyncio.create_task(counter_rate(url, SERIES, args.events))
            await produce(stack.kafka_bootstrap, stack.local_broker, args.events)
            rate = await watcher
            raw = await raw_consume_rate(stack.kafka_bootstrap, args.events)
            _, token = await register_and_login(stack.service_url("auth"))
            print(
                f"recommendations at {args.rate:.0f}/s for {args.seconds:.0f}s …",
                file=sys.stderr,
            )
            lat = await recommendation_latency(url, token, args.rate, args.seconds)
            base = await healthz_latency(url, args.rate, args.seconds)
            print()
            print("bench/optimizer (one run, one worker, loopback)")
            print(f"  raw aiokafka consume              {raw:>10,.0f} events/s   (baseline)")
            print(
                f"  optimizer topic -> model update   {rate:>10,.0f} events/s   "
                f"= {rate / raw:.3f} x raw   (target: >= 5,000/s)"
            )
            print(
                f"  GET /api/recommendations at {lat['achieved']:.0f}/s   "
                f"p50 {lat['p50']:.1f} ms   p99 {lat['p99']:.1f} ms   "
                f"failures {lat['failures']}   (target: p99 <= 10 ms)"
            )
            print(
                f"  GET /healthz at {base['achieved']:.0f}/s (baseline)   "
                f"p50 {base['p50']:.1f} ms   p99 {base['p99']:.1f} ms"
            )
            record(
                Measurement("optimizer, topic → model update, one worker", rate, "events/s"),
                Measurement("raw aiokafka consume", raw, "events/s"),
                at_least(5_000, "#5"),
                detail=f"{rate / raw:.3f} x raw",
            )
            record(
                Measurement(f"GET /api/recommendations p99 at {args.rate:.0f}/s", lat["p99"], "ms"),
                Measurement("GET /healthz p99, same rate", base["p99"], "ms"),
                at_most(10, "#5"),
                detail=f"p50 {lat['p50']:.1f} ms, {lat['failures']} failures",
            )

        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
