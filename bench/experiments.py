"""Experiments: assignment API latency and tagged events/s through the analysis, in one run.

Starts its own stack (PostgreSQL, Redis, broker, auth, experiments) on free ports in a
temporary folder, defines and starts one experiment straight in PostgreSQL, then measures:

1. GET /healthz of the experiments service at a fixed rate (baseline: the same server, no
   token, no database) and GET /api/experiments/{id}/assignment at the same rate;
2. the raw aiokafka consume rate of the same records (baseline, this process) and the rate of
   one analysis intake (a look after every event, checkpoints), built in this process as the
   service builds it and run over the same records once they are all on the topic.

Targets (issue #11): assignment p99 <= 10 ms at 500/s; >= 5,000 tagged events/s per worker.

    .venv/bin/python bench/experiments.py [--events 50000] [--rate 500] [--seconds 10]
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
import uuid
from dataclasses import replace

import aiohttp
import asyncpg
from _harness import (
    arguments,
    kafka_settings,
    private_stack,
    produce_events,
    raw_consume_rate,
    record_rate_against_raw_consume,
    register_and_login,
)
from _open_loop import healthz_latency, latency_line, open_loop, record_p99_against_healthz
from _rates import Progress, Rate

from finops.cli.stack.local_stack import Stack
from finops.common.events import llm_call_event
from finops.common.kafka import make_producer
from finops.common.topic_admin import ensure_topics
from finops.common.topics import AGENT_COST, EXPERIMENT_EVENTS, dlq_spec
from finops.experiments.adapters.repository import ExperimentRepository
from finops.experiments.app import open_intake
from finops.experiments.domain.definition import build_definition
from finops.experiments.settings import ExperimentsSettings

TASK = "bench-summarize"
QUICK_ARGS = ["--events", "20000", "--seconds", "1", "--rate", "100"]
QUICK_SECONDS = 30


async def running_experiment(database_url: str) -> str:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        repo = ExperimentRepository(pool)
        await repo.record_task_types([TASK])
        definition = build_definition(
            name=f"bench-{uuid.uuid4().hex[:8]}",
            task_type=TASK,
            variants=[
                {"name": "A", "model": "gpt-4o", "provider": "openai"},
                {"name": "B", "model": "gpt-4o-mini", "provider": "openai"},
            ],
            known_task_types={TASK},
            # equal variants and an unreachable min_samples: every event gets its full look
            # and nothing decides mid-run
            min_samples=10_000_000,
        )
        experiment = await repo.create(definition, "bench")
        await repo.apply(experiment.id, "start", "bench")
        return experiment.id
    finally:
        await pool.close()


def tagged_event(i: int, rng: random.Random, experiment_id: str) -> dict:
    variant = "AB"[i % 2]
    data = {
        "agent_id": f"agent-{i % 50}",
        "task_type": TASK,
        "provider": "openai",
        "model": "gpt-4o" if variant == "A" else "gpt-4o-mini",
        "usage": {"input_tokens": 500 + i % 700, "output_tokens": 120},
        "cost_usd": 0.01 * rng.lognormvariate(0, 0.5),
        "cost_source": "reported",
        "latency_ms": 300 + (i * 7) % 900,
        "success": rng.random() < 0.95,
        "quality": rng.random(),
        "experiment": {"id": experiment_id, "variant": variant},
    }
    return llm_call_event(data)


async def produce(bootstrap: str, local: bool, n: int, experiment_id: str) -> None:
    rng = random.Random(0)
    events = (tagged_event(i, rng, experiment_id) for i in range(n))
    await produce_events(kafka_settings(bootstrap, local), AGENT_COST.name, events)


async def analysis_rate(stack: Stack, n: int) -> tuple[Rate, float]:
    """Tagged events per second through one analysis intake catching up on a backlog, per
    second of wall-clock time and per second of this process's CPU time.

    The intake is built here, in this process, exactly as the service builds it (both
    stages: forwarding by experiment id, analysis; its own consumer groups, re-keyed topic and
    checkpoints, so it reads the cost topic from the start): measured on events
    already on the topic, the figure is the intake's, not the producer's or the broker's.
    From its first look at analysed events to the n-th, over the events after that look
    (read every millisecond: the intake counts a batch at a time), checkpoints included.
    Per CPU second is the
    figure a loaded, shared machine disturbs least (the process waits for a core, not its
    work).
    """
    tag = uuid.uuid4().hex[:8]
    settings = ExperimentsSettings(
        database_url=stack.database_url,
        kafka_bootstrap=stack.kafka_bootstrap,
        kafka_enable_idempotence=not stack.local_broker,
        consumer_group=f"bench-{tag}",
        analysis_group=f"bench-analysis-{tag}",
        checkpoint_name=f"bench-{tag}",
        # its own re-keyed topic: the service forwards the same events to the shared one
        events_topic=f"bench.experiment-events.{tag}",
    )
    events = replace(EXPERIMENT_EVENTS, name=settings.events_topic)
    await ensure_topics(settings, [events, dlq_spec(events)])
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    producer = make_producer(settings)
    await producer.start()
    intake = await open_intake(settings, pool, producer, ExperimentRepository(pool))
    stop = asyncio.Event()
    runner = asyncio.create_task(intake.run(stop))
    try:
        while intake.events == 0:
            await asyncio.sleep(0.001)
        progress = Progress("the analysis intake's events")
        start, cpu, first = time.perf_counter(), time.process_time(), intake.events
        progress.saw(first, start)
        while intake.events < n:
            progress.saw(intake.events)
            await asyncio.sleep(0.001)
        progress.saw(intake.events)
        cpu_s = time.process_time() - cpu
        rate = progress.rate()
        return rate, (intake.events - first) / cpu_s
    finally:
        stop.set()
        await runner
        await intake.consumer.stop()
        if intake.forwarder is not None:
            await intake.forwarder.consumer.stop()
        await producer.stop()
        await pool.close()


async def assignment_latency(
    url: str, experiment_id: str, token: str, rate: float, seconds: float
) -> dict:
    path = f"/api/experiments/{experiment_id}/assignment"

    async def get(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.get(f"{url}{path}", params={"unit": f"user-{i}"}) as r:
            await r.read()
            return r.status == 200

    headers = {"Authorization": f"Bearer {token}"}
    return await open_loop(get, rate=rate, seconds=seconds, headers=headers, server=url)


async def full_collections(url: str) -> tuple[int, float]:
    """How many full garbage collections the service has run, and their time in seconds
    (each one pauses its event loop)."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as r:
        text = await r.text()
    series = 'finops_gc_pause_seconds_{}{{generation="2",service="experiments"}} (\\S+)'
    count = re.search(series.format("count"), text)
    total = re.search(series.format("sum"), text)
    return (
        int(float(count.group(1))) if count else 0,
        float(total.group(1)) if total else 0.0,
    )


def main() -> int:
    args = arguments(__doc__, events=50_000, rate=500.0, seconds=10.0).parse_args()

    with private_stack(("auth", "experiments")) as stack:
        url = stack.service_url("experiments")

        async def run() -> None:
            experiment_id = await running_experiment(stack.database_url)
            _, token = await register_and_login(stack.service_url("auth"))
            print(f"GET at {args.rate:.0f}/s for {args.seconds:.0f}s …", file=sys.stderr)
            base = await healthz_latency(url, args.rate, args.seconds)
            gc_before = await full_collections(url)
            lat = await assignment_latency(url, experiment_id, token, args.rate, args.seconds)
            gc_after = await full_collections(url)
            print(f"producing {args.events:,} tagged cost events …", file=sys.stderr)
            await produce(stack.kafka_bootstrap, stack.local_broker, args.events, experiment_id)
            intake, rate_cpu = await analysis_rate(stack, args.events)
            cpu = time.process_time()
            raw_consume = await raw_consume_rate(stack.kafka_bootstrap, args.events)
            raw_cpu = args.events / (time.process_time() - cpu)
            rate, raw = intake.per_s, raw_consume.per_s
            print()
            print("bench/experiments (one run, one worker, loopback)")
            print(latency_line("GET /healthz (baseline)", base))
            print(
                latency_line(
                    "GET /api/experiments/{id}/assignment", lat, "   (target: p99 <= 10 ms)"
                )
            )
            print(
                f"  full (generation 2) garbage collections in the service during the "
                f"assignment run: {gc_after[0] - gc_before[0]}, "
                f"{(gc_after[1] - gc_before[1]) * 1000:.1f} ms in all"
            )
            print(
                f"  raw aiokafka consume              {raw:>10,.0f} events/s   (baseline, "
                f"{raw_consume.samples} samples)   {raw_cpu:>10,.0f} per CPU-s"
            )
            print(
                f"  experiments topic -> analysis (backlog) {rate:>10,.0f} events/s   "
                f"= {rate / raw:.3f} x raw   (target: >= 5,000/s; {intake.samples} samples)   "
                f"{rate_cpu:>10,.0f} per CPU-s = {rate_cpu / raw_cpu:.3f} x raw"
            )
            record_p99_against_healthz(
                f"GET /api/experiments/{{id}}/assignment p99 at {args.rate:.0f}/s",
                lat,
                base,
                10,
                "#11",
            )
            record_rate_against_raw_consume(
                "experiments, one analysis intake on a backlog", intake, raw_consume, 5_000, "#11"
            )

        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
