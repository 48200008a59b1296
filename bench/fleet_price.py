"""The fleet shadow price of partitioned learning: how long one fleet plan takes (issue 14).

With ``FINOPS_PARTITIONED_LEARNING=true`` and a fleet quality target, every replica's
:class:`~finops.optimizer.domain.fleet_view.FleetView` plans one shadow price over every
partition's task types each time it is built (up to every 0.5 s, on a thread). This script
feeds 12 task types (two per family, one family on each of 6 partitions) to one engine per
partition and to one engine fed every event, publishes the partition engines as a replica reads
them, and prints the median time of:

1. one engine's own re-plan of the same 12 task types (the baseline: what the one-worker
   policy pays every ``replan_every`` updates);
2. the fleet plan over the 6 partitions' shares;
3. building the whole view (merged analytics and budgets, the fleet plan, installing it).

No stack is needed.

    .venv/bin/python bench/fleet_price.py [--events 20000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable

from _figures import Measurement, at_most, record

from finops.common.events import Event, llm_call_event
from finops.optimizer.domain.engine import OptimizerEngine
from finops.optimizer.domain.fleet_view import FleetView, partition_of_task
from finops.optimizer.domain.policy import Objective
from finops.optimizer.domain.policy.planner import plan_fleet_price

QUICK_ARGS = ["--events", "3000", "--repeats", "5"]
QUICK_SECONDS = 6

PARTITIONS = 6
TARGET = 0.95
#: one family per partition of 6 (see partition_of_task)
FAMILIES = ["mmlu", "classify", "chat", "gsm8k", "math", "extract"]
#: model -> (success rate, USD per call at 1,000 input tokens)
MODELS = {"gpt-4o": (0.9, 0.004), "gpt-4o-mini": (0.8, 0.0005), "o3-mini": (0.86, 0.0015)}


def outcomes(n: int) -> list[Event]:
    rng = random.Random(3)
    tasks = [f"{family}/task-{i}" for family in FAMILIES for i in range(2)]
    out = []
    for i in range(n):
        model = rng.choice(list(MODELS))
        success, cost = MODELS[model]
        tokens = rng.randint(200, 4000)
        body = {
            "agent_id": f"agent-{i % 7}",
            "task_type": tasks[i % len(tasks)],
            "provider": "openai",
            "model": model,
            "usage": {"input_tokens": tokens, "output_tokens": 300},
            "latency_ms": 800,
            "success": True,
            "quality": float(rng.random() < success),
            "cost_usd": cost * tokens / 1000,
        }
        out.append(Event.from_kafka(json.dumps(llm_call_event(body)).encode()))
    return out


def engine() -> OptimizerEngine:
    """An engine held to the fleet target alone (no per-task floor: every arm is a choice)."""
    out = OptimizerEngine(fleet_quality_target=TARGET)
    out.set_objective("*", Objective())
    return out


def published(engine: OptimizerEngine) -> OptimizerEngine:
    """The engine as a replica reads it: its view state, serialised and restored."""
    return OptimizerEngine.from_state(
        json.loads(json.dumps(dict((name, build()) for name, build in engine.view_parts())))
    )


def median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    whole = engine()
    parts: dict[int, OptimizerEngine] = {}
    for event in outcomes(args.events):
        whole.take(event)
        partition = partition_of_task(event.data.task_type, PARTITIONS)
        if partition not in parts:
            parts[partition] = engine()
        parts[partition].take(event)
    engines = {p: published(e) for p, e in parts.items()}
    config = whole.policy.config
    view = FleetView(engines, PARTITIONS, OptimizerEngine())
    shares = view.plan_shares()
    one_ms = median_ms(lambda: plan_fleet_price(config, [whole.policy.plan_share()]), args.repeats)
    fleet_ms = median_ms(lambda: plan_fleet_price(config, shares), args.repeats)
    view_ms = median_ms(lambda: FleetView(engines, PARTITIONS, OptimizerEngine()), args.repeats)
    status = view.policy_status()
    print(
        f"fleet shadow price, {len(engines)} partitions, {len(whole.tasks())} task types, "
        f"{args.events:,} events (median of {args.repeats}; a shared machine: noisy)"
    )
    print(f"  {'one engine re-plans the 12 task types':<44} {one_ms:>8.2f} ms   (baseline)")
    print(f"  {'fleet plan over the 6 partitions':<44} {fleet_ms:>8.2f} ms   (target: <= 20 ms)")
    print(f"  {'whole view built (merges, plan, install)':<44} {view_ms:>8.2f} ms")
    print(f"  fleet mu {status.get('mu')}, one engine's mu {whole.policy.mu}")
    record(
        Measurement("optimizer, fleet shadow price over 6 partitions", fleet_ms, "ms"),
        Measurement("one engine re-plans the same task types", one_ms, "ms"),
        at_most(20, "#14"),
        detail=f"whole view built in {view_ms:.1f} ms",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
