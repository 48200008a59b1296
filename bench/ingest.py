"""Ingest throughput and latency against the raw producer rate, measured in one run.

Starts its own stack (PostgreSQL, Redis, broker, auth, ingest) on free ports in a temporary
folder, then measures, from load generators on loopback:

1. the raw aiokafka producer rate to the same broker (acks=all), the baseline;
2. the end-to-end ingest rate: HTTP batches of 500 events, each acknowledged (202);
3. single-event POST latency at a fixed 300 requests/s, next to GET /healthz of the same
   server at the same rate (baseline: no token, no validation, no broker).

Targets (issue #4): ingest >= 10,000 events/s and >= 0.4 x raw; single-event p99 <= 25 ms.

    .venv/bin/python bench/ingest.py [--events 100000] [--concurrency 4] [--seconds 10]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
from _figures import Measurement, at_least, record
from _harness import arguments, kafka_settings, private_stack, register_and_login
from _open_loop import healthz_latency, latency_line, open_loop, record_p99_against_healthz

from finops.common.events import llm_call_event
from finops.common.kafka import make_producer
from finops.common.topics import AGENT_COST

QUICK_ARGS = ["--events", "2000", "--seconds", "1", "--rate", "100"]
QUICK_SECONDS = 8


def event(agent: str) -> dict:
    return llm_call_event(
        {
            "agent_id": agent,
            "task_type": "summarize",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "usage": {"input_tokens": 1200, "output_tokens": 300, "cached_input_tokens": 256},
            "latency_ms": 850,
            "success": True,
            "quality": 0.9,
        }
    )


async def raw_producer_rate(bootstrap: str, local: bool, n: int) -> float:
    producer = make_producer(kafka_settings(bootstrap, local))
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
    bodies = [json.dumps([event(agent)]).encode() for _ in range(int(rate * seconds) + 50)]

    async def post(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.post(f"{ingest}/api/events", data=bodies[i]) as r:
            await r.read()
            return r.status == 202

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return await open_loop(post, rate=rate, seconds=seconds, headers=headers, server=ingest)


def main() -> int:
    parser = arguments(__doc__, events=100_000, rate=300.0, seconds=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with private_stack(("auth", "ingest")) as stack:
        auth, ingest = stack.service_url("auth"), stack.service_url("ingest")

        async def run() -> None:
            print(f"raw producer: {args.events:,} events …", file=sys.stderr)
            raw = await raw_producer_rate(stack.kafka_bootstrap, stack.local_broker, args.events)
            agent, token = await register_and_login(auth)
            print(f"ingest: {args.events:,} events in batches of 500 …", file=sys.stderr)
            rate = await ingest_rate(ingest, token, agent, args.events, args.concurrency)
            print(
                f"single-event POSTs at {args.rate:.0f}/s for {args.seconds:.0f}s …",
                file=sys.stderr,
            )
            lat = await single_event_latency(ingest, token, agent, args.rate, args.seconds)
            base = await healthz_latency(ingest, args.rate, args.seconds)
            print()
            print("bench/ingest (one run, same broker, loopback)")
            print(f"  raw aiokafka producer (acks=all)   {raw:>10,.0f} events/s   (baseline)")
            print(
                f"  ingest, HTTP batches of 500        {rate:>10,.0f} events/s   "
                f"= {rate / raw:.2f} x raw   (targets: >= 10,000/s, >= 0.40 x raw)"
            )
            print(latency_line("single-event POST", lat, "   (target: p99 <= 25 ms)"))
            print(latency_line("GET /healthz (baseline)", base))
            # timed from the first send to the last acknowledgement: samples, the events
            # acknowledged (producer) and the batches acknowledged (ingest)
            raw_rate = Measurement("raw aiokafka producer, acks=all", raw, "events/s", args.events)
            batches = "ingest, HTTP batches of 500, acknowledged"
            sent = max(1, args.events // 500)
            record(Measurement(batches, rate, "events/s", sent), raw_rate, at_least(10_000, "#4"))
            record(
                Measurement(f"{batches}, relative to raw", rate / raw, "x raw"),
                raw_rate,
                at_least(0.4, "#4"),
            )
            record_p99_against_healthz(
                f"single-event POST p99 at {args.rate:.0f} req/s", lat, base, 25, "#4"
            )

        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
