"""Ingest throughput and latency against the raw producer rate, measured in one run.

Starts its own stack (PostgreSQL, Redis, broker, auth, ingest) on free ports in a temporary
folder, then measures, from load generators on loopback:

1. the raw aiokafka producer rate to the same broker (acks=all), the baseline;
2. the end-to-end ingest rate: HTTP batches of 500 events, each acknowledged (202);
3. single-event POST latency at a fixed 300 requests/s.

Targets (issue #4): ingest >= 10,000 events/s and >= 0.4 x raw; single-event p99 <= 25 ms.

    .venv/bin/python bench/ingest.py [--events 100000] [--concurrency 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx

from finops.cli.stack import Stack, StackSettings, free_port
from finops.common.kafka import make_producer
from finops.common.settings import CommonSettings
from finops.common.topics import AGENT_COST


def event(agent: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "agent.llm_call",
        "source": agent,
        "specversion": "1.0",
        "time": datetime.now(UTC).isoformat(),
        "data": {
            "agent_id": agent,
            "task_type": "summarize",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "usage": {"input_tokens": 1200, "output_tokens": 300, "cached_input_tokens": 256},
            "latency_ms": 850,
            "success": True,
            "quality": 0.9,
        },
    }


async def raw_producer_rate(bootstrap: str, local: bool, n: int) -> float:
    settings = CommonSettings(kafka_bootstrap=bootstrap, kafka_enable_idempotence=not local)
    producer = make_producer(settings)
    await producer.start()
    values = [json.dumps(event(f"agent-{i % 50}")).encode() for i in range(n)]
    try:
        start = time.perf_counter()
        futures = [
            await producer.send(AGENT_COST.name, v, key=f"agent-{i % 50}".encode())
            for i, v in enumerate(values)
        ]
        await asyncio.gather(*futures)
        return n / (time.perf_counter() - start)
    finally:
        await producer.stop()


async def login(auth: str) -> tuple[str, str]:
    name = "bench" + uuid.uuid4().hex[:8]
    password = "bench password " + uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=auth, timeout=30) as client:
        r = await client.post(
            "/api/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": password},
        )
        r.raise_for_status()
        r = await client.post("/api/auth/login", json={"login": name, "password": password})
        r.raise_for_status()
        return name, r.json()["access_token"]


async def ingest_rate(ingest: str, token: str, agent: str, n: int, concurrency: int) -> float:
    bodies = [
        json.dumps([event(agent) for _ in range(500)]).encode() for _ in range(max(1, n // 500))
    ]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(f"{ingest}/api/events", data=body, headers=headers) as r:
                if r.status != 202:
                    raise RuntimeError(f"ingest answered {r.status}: {(await r.text())[:200]}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(f"{ingest}/api/events", data=bodies[0], headers=headers) as r:
            assert r.status == 202, await r.text()  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return len(bodies) * 500 / (time.perf_counter() - start)


async def single_event_latency(
    ingest: str, token: str, agent: str, rate: float, seconds: float
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    total = int(rate * seconds)
    bodies = [json.dumps([event(agent)]).encode() for _ in range(total + 50)]
    latencies: list[float] = []
    failures = 0

    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes) -> None:
            nonlocal failures
            t0 = time.perf_counter()
            async with session.post(f"{ingest}/api/events", data=body, headers=headers) as r:
                await r.read()
                failures += r.status != 202
            latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(one(b) for b in bodies[:50]))  # open and warm connections
        latencies.clear()
        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies[50:]):
            # Open loop: requests leave on schedule whether or not earlier ones returned.
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        achieved = len(tasks) / (time.perf_counter() - start)
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p99": q[98], "achieved_rps": achieved, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="finops-bench-") as tmp:
        ports = {f"{c}_port": free_port() for c in ("postgres", "redis", "kafka", "auth", "ingest")}
        settings = StackSettings(data_dir=Path(tmp), postgres_fsync=False, **ports)
        stack = Stack(
            settings,
            services=("auth", "ingest"),
            echo=lambda line: print(f"  {line}", file=sys.stderr),
        )
        print("starting a private stack (auth, ingest, broker, redis, postgres)…", file=sys.stderr)
        stack.start()
        try:
            auth, ingest = stack.service_url("auth"), stack.service_url("ingest")

            async def run() -> None:
                print(f"raw producer: {args.events:,} events …", file=sys.stderr)
                raw = await raw_producer_rate(
                    stack.kafka_bootstrap, stack.local_broker, args.events
                )
                agent, token = await login(auth)
                print(f"ingest: {args.events:,} events in batches of 500 …", file=sys.stderr)
                rate = await ingest_rate(ingest, token, agent, args.events, args.concurrency)
                print(
                    f"single-event POSTs at {args.rate:.0f}/s for {args.seconds:.0f}s …",
                    file=sys.stderr,
                )
                lat = await single_event_latency(ingest, token, agent, args.rate, args.seconds)
                print()
                print("bench/ingest (one run, same broker, loopback)")
                print(f"  raw aiokafka producer (acks=all)   {raw:>10,.0f} events/s   (baseline)")
                print(
                    f"  ingest, HTTP batches of 500        {rate:>10,.0f} events/s   "
                    f"= {rate / raw:.2f} x raw   (targets: >= 10,000/s, >= 0.40 x raw)"
                )
                print(
                    f"  single-event POST at {lat['achieved_rps']:.0f} req/s      "
                    f"p50 {lat['p50']:.1f} ms   p99 {lat['p99']:.1f} ms   "
                    f"failures {lat['failures']}   (target: p99 <= 25 ms)"
                )

            asyncio.run(run())
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
