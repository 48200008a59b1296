"""Optimizer throughput (topic -> model update) and recommendation API latency, in one run.

Starts its own stack (PostgreSQL, Redis, broker, auth, optimizer) on free ports in a temporary
folder, then measures:

1. the raw aiokafka consume rate of the same records (baseline, this process);
2. the optimizer's rate from topic to model update (analytics, policy, budgets, anomaly
   detection, checkpoints), read from its own Prometheus counter;
3. GET /api/recommendations latency at a fixed 500 requests/s from a load generator on
   loopback, next to GET /healthz of the same server at the same rate (baseline).

4. with learning partitioned by task type (issue #14), the rate from topic to model update of
   one worker and of two workers (each a process of its own, forwarding, owning and
   publishing), over the same number of events on topics of their own: two workers next to
   one, the baseline.

Targets (issue #5): >= 5,000 events/s for one worker; recommendation p99 <= 10 ms at 500/s.
Two partitioned workers (issue #14): >= 5,000 events/s.

    .venv/bin/python bench/optimizer.py [--events 50000] [--learning-events N] [--rate 500]
        [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
from _figures import Measurement, at_least, record
from _harness import (
    ServiceBench,
    ServiceFigures,
    arguments,
    measure_service,
    private_stack,
)
from _rates import Rate
from _workers import learning_rate

from finops.cli.stack.local_stack import Stack
from finops.common.events import llm_call_event
from finops.common.topics import AGENT_COST

MODELS = [("gpt-4o", 0.90), ("gpt-4o-mini", 0.86), ("gpt-4.1-nano", 0.70)]
TASKS = [f"task-{i}" for i in range(20)]
#: the counter of events done, from the service's /metrics
SERIES = 'finops_optimizer_events_total{outcome="applied",topic="agent.cost.v1"}'
QUICK_ARGS = ["--events", "20000", "--learning-events", "10000", "--seconds", "1", "--rate", "100"]
QUICK_SECONDS = 50


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


async def measure(stack: Stack, args: argparse.Namespace) -> tuple[ServiceFigures, Rate, Rate]:
    figures = await measure_service(
        stack,
        BENCH.service,
        counter=BENCH.counter,
        topic=BENCH.topic,
        events=cost_events(args.events),
        n=args.events,
        request=BENCH.request,
        rate=args.rate,
        seconds=args.seconds,
    )
    n = args.learning_events or args.events
    one = await learning_rate(stack, 1, cost_events(n), n)
    two = await learning_rate(stack, 2, cost_events(n), n)
    return figures, one, two


def main() -> int:
    parser = arguments(__doc__, events=50_000, rate=500.0, seconds=10.0)
    parser.add_argument(
        "--learning-events",
        type=int,
        help="events of each partitioned learning run (default: --events)",
    )
    args = parser.parse_args()
    with private_stack(("auth", BENCH.service)) as stack:
        figures, one, two = asyncio.run(measure(stack, args))
    figures.report(BENCH.title, BENCH.intake, BENCH.endpoint, rate_target=5_000, p99_target_ms=10)
    print(
        f"  {'partitioned learning, one worker':<34} {one.per_s:>10,.0f} events/s   (baseline, "
        f"{one.samples} samples)"
    )
    print(
        f"  {'partitioned learning, two workers':<34} {two.per_s:>10,.0f} events/s   = "
        f"{two.per_s / one.per_s:.2f} x one   (target: >= 5,000/s; {two.samples} samples)"
    )
    record(
        Measurement(
            "optimizer, partitioned learning, two workers", two.per_s, "events/s", two.samples
        ),
        Measurement("partitioned learning, one worker", one.per_s, "events/s", one.samples),
        at_least(5_000, "#14"),
        detail=f"{two.per_s / one.per_s:.2f} x one worker",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
