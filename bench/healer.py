"""Healer: advice API latency and error events classified per second, each with its baseline.

Starts its own stack (PostgreSQL, Redis, broker, auth, healer) on free ports in a temporary
folder, then measures, in one run:

1. the raw aiokafka consume rate of the same error records (baseline, this process);
2. the healer's rate from ``agent.error.v1`` to its ledger (decode, classify, learn), read
   from its own Prometheus counter;
3. ``GET /healthz`` of the healer at a fixed rate (baseline: the HTTP stack alone);
4. ``POST /api/healing/advice`` at the same rate (classify, choose a remedy, publish the
   advice on ``finops.healing.v1``).

Targets (issue 10): >= 5,000 error events/s per worker; advice p99 <= 10 ms at 500/s.

    .venv/bin/python bench/healer.py [--events 30000] [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime

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
from finops.common.topics import AGENT_ERROR

APPLIED = 'finops_healer_outcome_records_total{outcome="applied",topic="agent.error.v1"}'
QUICK_ARGS = ["--events", "2000", "--seconds", "1", "--rate", "100"]
#: (status, provider, error part) of the errors agents report, round robin
ERRORS = [
    (429, "openai", {"type": "requests", "provider_code": "rate_limit_exceeded",
                     "message": "Rate limit reached for gpt-4o. Please try again in 6ms.",
                     "headers": {"retry-after-ms": "6"}}),
    (529, "anthropic", {"type": "overloaded_error", "message": "Overloaded"}),
    (400, "openai", {"type": "invalid_request_error", "provider_code": "context_length_exceeded",
                     "message": "This model's maximum context length is 128000 tokens."}),
    (500, "openai", {"type": "server_error", "message": "The server had an error."}),
    (401, "anthropic", {"type": "authentication_error", "message": "invalid x-api-key"}),
    (429, "google", {"type": "RESOURCE_EXHAUSTED", "message": "Resource has been exhausted"}),
]  # fmt: skip


def error_data(i: int) -> dict:
    status, provider, error = ERRORS[i % len(ERRORS)]
    return {
        "agent_id": f"agent-{i % 50}",
        "task_type": f"task-{i % 20}",
        "provider": provider,
        "model": "gpt-4o" if provider == "openai" else "claude-sonnet-4-5",
        "error": {"status_code": status, **error},
        "request": {"input_tokens": 150_000, "max_tokens": 4_000},
    }


def error_event(i: int) -> dict:
    data = error_data(i)
    return {
        "id": str(uuid.uuid4()),
        "type": "agent.error",
        "source": data["agent_id"],
        "specversion": "1.0",
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }


async def produce(bootstrap: str, local: bool, n: int) -> None:
    settings = CommonSettings(kafka_bootstrap=bootstrap, kafka_enable_idempotence=not local)
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = []
        for i in range(n):
            event = error_event(i)
            futures.append(
                await producer.send(
                    AGENT_ERROR.name,
                    json.dumps(event).encode(),
                    key=event["data"]["agent_id"].encode(),
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def advice_latency(url: str, token: str, rate: float, seconds: float) -> dict:
    async def post(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.post(f"{url}/api/healing/advice", json=error_data(i)) as r:
            await r.read()
            return r.status == 200

    headers = {"Authorization": f"Bearer {token}"}
    return await open_loop(post, rate=rate, seconds=seconds, headers=headers)


def line(name: str, lat: dict, note: str = "") -> str:
    return (
        f"  {name:<34} at {lat['achieved']:.0f}/s   p50 {lat['p50']:.1f} ms   "
        f"p99 {lat['p99']:.1f} ms   failures {lat['failures']:.0f}{note}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    with private_stack(("auth", "healer")) as stack:
        url = stack.service_url("healer")

        async def run() -> None:
            print(f"producing {args.events:,} error events …", file=sys.stderr)
            watcher = asyncio.create_task(counter_rate(url, APPLIED, args.events))
            await produce(stack.kafka_bootstrap, stack.local_broker, args.events)
            rate = await watcher
            raw = await raw_consume_rate(stack.kafka_bootstrap, args.events, AGENT_ERROR.name)
            _, token = await register_and_login(stack.service_url("auth"))
            print(f"requests at {args.rate:.0f}/s for {args.seconds:.0f}s …", file=sys.stderr)
            health = await healthz_latency(url, args.rate, args.seconds)
            advice = await advice_latency(url, token, args.rate, args.seconds)
            print()
            print("bench/healer (one run, one worker, loopback)")
            print(f"  raw aiokafka consume               {raw:>10,.0f} events/s   (baseline)")
            print(
                f"  healer agent.error -> ledger       {rate:>10,.0f} events/s   "
                f"= {rate / raw:.3f} x raw   (target: >= 5,000/s)"
            )
            print(line("GET /healthz (baseline)", health))
            print(line("POST /api/healing/advice", advice, "   (target: p99 <= 10 ms)"))
            record(
                Measurement("healer, agent.error → ledger (classify, learn), one worker", rate,
                            "events/s"),
                Measurement("raw aiokafka consume", raw, "events/s"),
                at_least(5_000, "#10"),
                detail=f"{rate / raw:.3f} x raw",
            )  # fmt: skip
            record(
                Measurement(f"POST /api/healing/advice p99 at {args.rate:.0f}/s", advice["p99"],
                            "ms"),
                Measurement("GET /healthz p99, same rate", health["p99"], "ms"),
                at_most(10, "#10"),
                detail=f"p50 {advice['p50']:.1f} ms, {advice['failures']:.0f} failures",
            )  # fmt: skip

        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
