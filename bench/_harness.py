"""What the benchmark scripts share: a private stack, a user, producing events, and the figures
every stream service and API is measured by (the open-loop load is in ``_open_loop``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from _figures import Measurement, at_least, record
from _open_loop import healthz_latency, latency_line, open_loop, record_p99_against_healthz
from _rates import Progress, Rate
from aiokafka import TopicPartition

from finops.cli.stack.infra import INFRA
from finops.cli.stack.local_stack import Stack, StackSettings
from finops.cli.stack.ports import free_port
from finops.common.kafka import make_consumer, make_producer
from finops.common.settings import CommonSettings
from finops.common.topics import AGENT_COST

#: the records a service's consumer takes at once (``AtLeastOnceConsumer``'s batch_max_records)
SERVICE_BATCH = 2000


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def arguments(
    doc: str | None, *, events: int, rate: float | None = None, seconds: float | None = None
) -> argparse.ArgumentParser:
    """The parser of a script's ``--events`` (and ``--rate``, ``--seconds`` of its API load);
    a script adds its own options before parsing."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=events)
    if rate is not None:
        parser.add_argument("--rate", type=float, default=rate)
    if seconds is not None:
        parser.add_argument("--seconds", type=float, default=seconds)
    return parser


def kafka_settings(bootstrap: str, local: bool) -> CommonSettings:
    """Client settings for the private stack's broker (the local broker has no idempotence)."""
    return CommonSettings(kafka_bootstrap=bootstrap, kafka_enable_idempotence=not local)


async def produce_events(settings: CommonSettings, topic: str, events: Iterable[dict]) -> None:
    """Send every event as JSON to ``topic``, keyed by its agent; return once all are acked."""
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, json.dumps(e).encode(), key=e["data"]["agent_id"].encode())
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@contextlib.contextmanager
def private_stack(
    services: tuple[str, ...], storage: Literal["disk", "memory"] = "memory"
) -> Iterator[Stack]:
    """The infrastructure and ``services`` on free ports in a temporary folder.

    The broker keeps its log in memory unless ``storage="disk"``: the local disk storage
    (s3rver, one single-threaded node process) serves reads at 100 % of a core long before
    a service is busy (measured: the optimizer's intake at 3,400 events/s on disk storage,
    9,400 in memory; the healer's at 720 and 19,000), so on disk the figures would be the
    local broker's, not the services'. Production runs Apache Kafka, which reads from the
    page cache.
    """
    with tempfile.TemporaryDirectory(prefix="finops-bench-") as tmp:
        ports = {f"{c}_port": free_port() for c in (*INFRA, *services)}
        settings = StackSettings(
            data_dir=Path(tmp), postgres_fsync=False, kafka_storage=storage, **ports
        )
        stack = Stack(settings, services=services, echo=lambda line: note(f"  {line}"))
        note(f"starting a private stack ({', '.join((*services, *INFRA))})…")
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()


async def register_and_login(auth: str) -> tuple[str, str]:
    """A fresh agent account: (username, access token)."""
    name = "bench" + uuid.uuid4().hex[:8]
    password = "bench password " + uuid.uuid4().hex
    async with aiohttp.ClientSession() as s:
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        async with s.post(f"{auth}/api/auth/register", json=body) as r:
            assert r.status == 201, await r.text()
        login = {"login": name, "password": password}
        async with s.post(f"{auth}/api/auth/login", json=login) as r:
            assert r.status == 200, await r.text()
            return name, str((await r.json())["access_token"])


async def raw_consume_rate(
    bootstrap: str, n: int, topic: str = AGENT_COST.name, limit_s: float = 120
) -> Rate:
    """``topic`` (default ``agent.cost.v1``, holding ``n`` records) read from the start by a
    bare aiokafka consumer in this process, in batches of up to :data:`SERVICE_BATCH` records
    as a service's consumer takes them: the baseline of a stream service's rate over the same
    records. Timed as the services are (:func:`counter_rate`): from the first batch read to
    the n-th record, over the records after the first batch, so joining the broker and the
    first fetch are in neither figure."""
    settings = CommonSettings(kafka_bootstrap=bootstrap)
    consumer = make_consumer(settings, group_id=None, fetch_max_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        progress, count = Progress(f"raw consume of {topic}"), 0
        deadline = time.monotonic() + limit_s
        while count < n:
            batch = await consumer.getmany(timeout_ms=200, max_records=SERVICE_BATCH)
            if batch:
                count += sum(len(records) for records in batch.values())
                progress.saw(min(count, n))
            elif time.monotonic() > deadline:
                raise TimeoutError(f"read {count} of {n} records of {topic} in {limit_s:.0f} s")
        return progress.rate()
    finally:
        await consumer.stop()


async def counter_value(session: aiohttp.ClientSession, url: str, series: str) -> int:
    """The value of one Prometheus series (name and labels, as exposed) at ``url/metrics``."""
    async with session.get(f"{url}/metrics") as r:
        text = await r.text()
    m = re.search(re.escape(series) + r" (\S+)", text)
    return int(float(m.group(1))) if m else 0


@dataclass(frozen=True)
class Series:
    """A metric summed over every series of ``name`` whose labels include ``labels``."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    def total(self, exposition: str) -> float:
        found = 0.0
        for line in exposition.splitlines():
            if not line.startswith(self.name + "{"):
                continue
            labels, _, value = line[len(self.name) :].rpartition(" ")
            if all(f'{k}="{v}"' in labels for k, v in self.labels):
                found += float(value)
        return found


async def all_counted(url: str, series: tuple[Series, ...], n: int, limit_s: float = 600) -> None:
    """Wait until each of ``series`` at ``url/metrics`` has reached ``n``."""
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{url}/metrics") as r:
                text = await r.text()
            if all(s.total(text) >= n for s in series):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{series} did not reach {n} in {limit_s:.0f} s")
            await asyncio.sleep(0.2)


async def counter_rate(url: str, series: str, n: int) -> Rate:
    """Per second, how fast the counter ``series`` grows from its first increment to ``n``
    (the events counted before its first reading and their time are left out).

    The service answers a scrape only between two turns of its consumers (a stream service
    applies 100 records a turn), so ``n`` must be many turns for the counter to be seen
    rising (:class:`Progress`), and a scrape sent during a turn is answered after it: each
    reading is timed when its answer arrives, the moment its value holds."""
    progress = Progress(f"{series} at {url}")
    async with aiohttp.ClientSession() as session:
        while (done := await counter_value(session, url, series)) == 0:
            await asyncio.sleep(0.01)
        progress.saw(done)
        # A scrape renders every metric of the service: polled often, it would slow what is
        # measured (the counter is read to within a fifth of a second of the end).
        while done < n:
            await asyncio.sleep(0.2)
            done = await counter_value(session, url, series)
            progress.saw(done)
        return progress.rate()


def record_rate_against_raw_consume(
    name: str, rate: Rate, raw: Rate, target: float, source: str, raw_name: str = ""
) -> None:
    """Record a stream service's events/s next to the raw consume of the same records."""
    record(
        Measurement(name, rate.per_s, "events/s", rate.samples),
        Measurement(raw_name or "raw aiokafka consume", raw.per_s, "events/s", raw.samples),
        at_least(target, source),
        detail=f"{rate.per_s / raw.per_s:.3f} x raw",
    )


#: one request of an API load: ``(session, service URL, i) -> whether it succeeded``
Request = Callable[[aiohttp.ClientSession, str, int], Awaitable[bool]]


@dataclass(frozen=True)
class ServiceFigures:
    """A stream service's intake rate and one endpoint's latency, each with its baseline."""

    rate: Rate  #: events/s the service counted, from its first batch to the last event
    raw: Rate  #: events/s of a bare aiokafka consumer over the same records
    endpoint: dict[str, float]  #: the endpoint under an open-loop load (see _open_loop)
    healthz: dict[str, float]  #: ``GET /healthz`` of the same server at the same rate
    load: float  #: the requests/s both loads were fired at

    def report(
        self, title: str, intake: str, endpoint: str, rate_target: float, p99_target_ms: float
    ) -> None:
        """Print the four figures and record the two against their baselines; ``title`` names
        the script and ends with its issue (``"bench/healer #10"``)."""
        script, source = title.rsplit(" ", 1)
        print()
        print(f"{script} (one run, one worker, loopback, shared machine)")
        raw, rate = self.raw, self.rate
        print(
            f"  {'raw aiokafka consume':<34} {raw.per_s:>10,.0f} events/s   (baseline, "
            f"{raw.samples} samples)"
        )
        print(
            f"  {intake:<34} {rate.per_s:>10,.0f} events/s   = {rate.per_s / raw.per_s:.3f} x raw"
            f"   (target: >= {rate_target:,.0f}/s; {rate.samples} samples)"
        )
        print(latency_line("GET /healthz (baseline)", self.healthz))
        target = f"   (target: p99 <= {p99_target_ms:g} ms)"
        print(latency_line(endpoint, self.endpoint, target))
        record_rate_against_raw_consume(intake, self.rate, self.raw, rate_target, source)
        record_p99_against_healthz(
            f"{endpoint} p99 at {self.load:.0f}/s",
            self.endpoint,
            self.healthz,
            p99_target_ms,
            source,
        )


async def measure_service(
    stack: Stack,
    service: str,
    *,
    counter: str,
    topic: str,
    events: Iterable[dict],
    n: int,
    request: Request,
    rate: float,
    seconds: float,
    settled: tuple[Series, ...] = (),
) -> ServiceFigures:
    """Produce ``n`` events to ``topic`` and time the service's ``counter`` up to ``n``; then,
    once each of the ``settled`` series has counted ``n`` too (the service's other consumers
    of the same events are done: latency is measured on an idle service), load ``request``
    (with a fresh user's token) and ``/healthz`` at ``rate`` for ``seconds``."""
    url = stack.service_url(service)
    note(f"producing {n:,} events to {topic} …")
    watcher = asyncio.create_task(counter_rate(url, counter, n))
    await produce_events(kafka_settings(stack.kafka_bootstrap, stack.local_broker), topic, events)
    service_rate = await watcher
    if settled:
        note("waiting for the service's other consumers of the events to catch up …")
        await all_counted(url, settled, n)
    raw = await raw_consume_rate(stack.kafka_bootstrap, n, topic)
    _, token = await register_and_login(stack.service_url("auth"))
    note(f"requests at {rate:.0f}/s for {seconds:.0f}s …")
    healthz = await healthz_latency(url, rate, seconds)
    endpoint = await open_loop(
        lambda session, i: request(session, url, i),
        rate=rate,
        seconds=seconds,
        headers={"Authorization": f"Bearer {token}"},
        server=url,
    )
    return ServiceFigures(service_rate, raw, endpoint, healthz, rate)


@dataclass(frozen=True)
class ServiceBench:
    """A stream service's benchmark: its intake rate over produced events, and one endpoint's
    latency, each next to its baseline (see :func:`measure_service`, :meth:`ServiceFigures.report`).
    """

    service: str  #: the service to start next to auth
    counter: str  #: the Prometheus series that counts the events it has taken in
    topic: str  #: where the events go
    events: Callable[[int], Iterable[dict]]  #: the n events to produce
    request: Request  #: one request of the endpoint's load
    title: str  #: the script and its issue, e.g. "bench/healer #10"
    intake: str  #: the name of the intake figure
    endpoint: str  #: the name of the endpoint figure, e.g. "POST /api/healing/advice"
    storage: Literal["disk", "memory"] = "memory"  #: the broker's log (see :func:`private_stack`)
    #: the service's other consumers of the events, waited for before the latency is measured
    settled: tuple[Series, ...] = ()

    def main(self, doc: str | None, events: int) -> int:
        args = arguments(doc, events=events, rate=500.0, seconds=10.0).parse_args()
        with private_stack(("auth", self.service), self.storage) as stack:
            figures = asyncio.run(
                measure_service(
                    stack,
                    self.service,
                    counter=self.counter,
                    topic=self.topic,
                    events=self.events(args.events),
                    n=args.events,
                    request=self.request,
                    rate=args.rate,
                    seconds=args.seconds,
                    settled=self.settled,
                )
            )
        figures.report(self.title, self.intake, self.endpoint, rate_target=5_000, p99_target_ms=10)
        return 0
