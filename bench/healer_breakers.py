"""Circuit breakers: error events through the breaker update, and how soon another instance
sees a breaker change, each next to its baseline measured in the same run.

Starts its own infrastructure (PostgreSQL, Redis, broker) on free ports in a temporary folder,
produces the error events, then measures:

1. the raw aiokafka consume rate of those events (baseline, this process);
2. one worker's rate from ``agent.error.v1`` to the breaker update: the healer's breaker
   loops (``finops.healer.adapters.circuits_stream.breaker_pipeline``, both stages of
   docs/breakers.md: each event decoded, classified, forwarded by provider/model, counted in
   its breaker, each partition's breakers checkpointed every 5 s) run in this process over
   the events already on the topic, timed from the first event read to the last fault
   counted;
3. for a series of breakers tripped one after another: the time from the healer publishing
   a state change on ``finops.circuits.v1`` (the record's timestamp) until a second reader of
   the topic in this process holds it — what another healer or optimizer instance waits — and
   the time from the tripping error event being acknowledged to that moment; baseline: a
   plain produce (acks=all) until the same kind of reader holds the record.

Target (issue #10): >= 5,000 error events/s per worker; a second instance within 1 s.

    .venv/bin/python bench/healer_breakers.py [--events 20000] [--trips 10]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

import asyncpg
from _figures import Measurement, at_most, record
from _harness import (
    arguments,
    kafka_settings,
    note,
    private_stack,
    produce_events,
    raw_consume_rate,
    record_rate_against_raw_consume,
)
from _rates import Progress, Rate
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from finops.common.checkpoints import PostgresCheckpointStore
from finops.common.circuits import CircuitState, CircuitStatus, CircuitTable
from finops.common.events import error_event
from finops.common.kafka import make_consumer, make_producer
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import AGENT_ERROR, CIRCUITS, TopicSpec
from finops.healer.adapters.circuits_stream import breaker_pipeline
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.settings import HealerSettings

#: (status, message): provider faults, and the caller's own mistakes (not counted)
ERRORS = [
    (429, "Rate limit reached for gpt-4o in organization org-x on tokens per min. "),
    (503, "The model is overloaded. Please try again later."),
    (500, "The server had an error while processing your request. Sorry about that!"),
    (400, "Invalid 'messages[1].content': string too long."),
]
MODELS = [
    (provider, model)
    for provider in ("openai", "azure", "anthropic", "google")
    for model in ("large", "mini", "nano")
]

QUICK_ARGS = ["--events", "10000", "--trips", "2"]
QUICK_SECONDS = 18


def agent_error(i: int, provider: str, model: str, status: int, message: str) -> dict:
    error = {"status_code": status, "message": message}
    identity = {"agent_id": f"agent-{i % 50}", "task_type": "summarize"}
    return error_event({**identity, "provider": provider, "model": model, "error": error})


def counted(outcome: str | None = None) -> float:
    """This process's breaker counters (the pipeline runs here)."""
    if outcome is None:
        return REGISTRY.get_sample_value("finops_healer_breaker_updates_total") or 0.0
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("finops_healer_breaker_outcomes_total", labels) or 0.0


async def breaker_rate(n: int, faults: int) -> Rate:
    """Error events per second from the first ones read to the last fault counted, over the
    events after the first look; its samples are the looks that saw more events read."""

    def read() -> float:
        return counted("fault") + counted("not_a_provider_fault")

    while read() == 0:
        await asyncio.sleep(0.001)
    progress = Progress("error events read by the breaker loops")
    progress.saw(read())
    while counted() < faults:
        await asyncio.sleep(0.01)
        progress.saw(read())
    progress.saw(n)
    return progress.rate()


class SecondReader:
    """Another instance's view of the circuits topic: when each state change arrived."""

    def __init__(self, settings: CommonSettings, topic: str) -> None:
        self.consumer = make_consumer(settings, group_id=None)
        self.topic = topic
        self.arrivals: dict[tuple[str, str, str], tuple[float, float]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        try:
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=50)
                now = time.time()
                for records in batch.values():
                    for r in records:
                        key = self.key_of(r.value)
                        self.arrivals.setdefault(key, (r.timestamp / 1000, now))
        finally:
            await self.consumer.stop()

    def key_of(self, raw: bytes) -> tuple[str, str, str]:
        try:
            state = CircuitState.from_json(raw)
        except (ValueError, KeyError):
            text = raw.decode(errors="replace")
            return ("raw", text, "")
        return (state.provider, state.model, state.state.value)


async def wait_for(reader: SecondReader, key: tuple[str, str, str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while key not in reader.arrivals and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return key in reader.arrivals


async def trips(settings: CommonSettings, n: int) -> tuple[list[float], list[float], list[float]]:
    """Trip ``n`` fresh breakers one at a time; publish→seen and event→seen delays, and the
    baseline produce→seen delays of plain records on a topic of the same shape."""
    plain = TopicSpec(f"bench.plain.{uuid.uuid4().hex[:8]}", CIRCUITS.partitions, "k", "bench")
    await ensure_topics(settings, [plain])
    reader, plain_reader = SecondReader(settings, CIRCUITS.name), SecondReader(settings, plain.name)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in (reader, plain_reader)]
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    seen, end_to_end, baseline = [], [], []
    try:
        await asyncio.sleep(2)  # the readers have their partitions
        for i in range(n):
            model = f"bench-model-{uuid.uuid4().hex[:6]}"
            # min_calls is 20, counted without the agent that reported the most faults (the
            # breakers' quorum): from 21 agents with one fault each, the 21st opens the
            # breaker; time from its ack
            burst = [agent_error(j, "bench", model, 503, ERRORS[1][1]) for j in range(21)]
            for event in burst:
                await producer.send(
                    AGENT_ERROR.name,
                    json.dumps(event).encode(),
                    key=event["data"]["agent_id"].encode(),
                )
            await producer.flush()
            acked = time.time()
            if not await wait_for(reader, ("bench", model, CircuitStatus.OPEN.value), 60):
                note(f"  trip {i}: not seen within 60 s")
                continue
            published, arrived = reader.arrivals[("bench", model, CircuitStatus.OPEN.value)]
            seen.append(arrived - published)
            end_to_end.append(arrived - acked)
            marker = f"baseline-{uuid.uuid4().hex}"
            sent = time.time()
            await producer.send_and_wait(plain.name, marker.encode(), key=marker.encode())
            if await wait_for(plain_reader, ("raw", marker, ""), 30):
                baseline.append(plain_reader.arrivals[("raw", marker, "")][1] - sent)
    finally:
        await producer.stop()
        stop.set()
        await asyncio.gather(*tasks)
    return seen, end_to_end, baseline


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = [v * 1000 for v in values]
    return f"median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms (n={len(ms)})"


def healer_settings(stack: Any) -> HealerSettings:
    tag = uuid.uuid4().hex[:8]
    return HealerSettings(
        kafka_bootstrap=stack.kafka_bootstrap,
        kafka_enable_idempotence=not stack.local_broker,
        breaker_group=f"bench-outcomes-{tag}",
        breaker_owner_group=f"bench-breakers-{tag}",
        breaker_checkpoint_name=f"bench-breakers-{tag}",
    )


def main() -> int:
    parser = arguments(__doc__, events=20_000)
    parser.add_argument("--trips", type=int, default=10)
    args = parser.parse_args()

    with private_stack(()) as stack:
        settings = kafka_settings(stack.kafka_bootstrap, stack.local_broker)

        async def run() -> None:
            events = [
                agent_error(i, *MODELS[i % len(MODELS)], *ERRORS[i % len(ERRORS)])
                for i in range(args.events)
            ]
            faults = sum(1 for e in events if e["data"]["error"]["status_code"] != 400)
            note(f"producing {args.events:,} error events …")
            await produce_events(settings, AGENT_ERROR.name, events)
            raw = await raw_consume_rate(stack.kafka_bootstrap, args.events, AGENT_ERROR.name)
            view = CircuitTable()
            classifier = ErrorClassifier()
            pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
            store = PostgresCheckpointStore(pool, "healer_checkpoints")
            async with breaker_pipeline(
                healer_settings(stack), lambda: classifier, view.get, store
            ):
                note("breaker loops started: reading the events …")
                rate = await breaker_rate(args.events, faults)
                note(f"tripping {args.trips} breakers …")
                seen, end_to_end, baseline = await trips(settings, args.trips)
            await pool.close()
            print()
            print("bench/healer_breakers (one run, one worker, loopback, shared machine)")
            print(
                f"  raw aiokafka consume of agent.error.v1   {raw.per_s:>10,.0f} events/s   "
                f"(baseline, {raw.samples} samples)"
            )
            print(
                f"  error events -> breaker update           {rate.per_s:>10,.0f} events/s   "
                f"= {rate.per_s / raw.per_s:.3f} x raw   (target: >= 5,000/s; "
                f"{rate.samples} samples)"
            )
            print(f"  plain record produce -> second reader    {spread(baseline)}   (baseline)")
            print(f"  breaker published -> second reader       {spread(seen)}   (target: <= 1 s)")
            print(f"  tripping event acked -> second reader    {spread(end_to_end)}")
            record_rate_against_raw_consume(
                "healer, error event → breaker update, one worker",
                rate,
                raw,
                5_000,
                "#10",
                raw_name="raw aiokafka consume of agent.error.v1",
            )
            if seen and baseline:
                record(
                    Measurement(
                        "breaker change published → a second instance holds it (median)",
                        statistics.median(seen) * 1000,
                        "ms",
                    ),
                    Measurement(
                        "plain record produced → a reader holds it (median)",
                        statistics.median(baseline) * 1000,
                        "ms",
                    ),
                    at_most(1_000, "#10"),
                    detail=f"tripping event acknowledged → second instance: {spread(end_to_end)}",
                )

        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
