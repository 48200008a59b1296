"""What the benchmark scripts share: a private stack, a user, an open-loop load generator."""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp

from finops.cli.infra import INFRA
from finops.cli.process import free_port
from finops.cli.stack import Stack, StackSettings
from finops.common.kafka import read_topic
from finops.common.settings import CommonSettings
from finops.common.topics import AGENT_COST


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def private_stack(services: tuple[str, ...]) -> Iterator[Stack]:
    """The infrastructure and ``services`` on free ports in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="finops-bench-") as tmp:
        ports = {f"{c}_port": free_port() for c in (*INFRA, *services)}
        settings = StackSettings(data_dir=Path(tmp), postgres_fsync=False, **ports)
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


async def open_loop(
    request: Callable[[aiohttp.ClientSession, int], Awaitable[bool]],
    *,
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
    warmup: int = 50,
) -> dict[str, float]:
    """Fire ``request(session, i)`` at a fixed rate, whether or not earlier ones returned.

    Open loop, so a slow server shows up as latency instead of a lower request rate.
    Returns p50/p99 in ms, the achieved rate and the number of failed requests.
    """
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(i: int) -> None:
            nonlocal failures
            t0 = time.perf_counter()
            ok = await request(session, i)
            latencies.append((time.perf_counter() - t0) * 1000)
            failures += not ok

        await asyncio.gather(*(one(i) for i in range(warmup)))  # open and warm connections
        latencies.clear()
        total = int(rate * seconds)
        tasks = []
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(warmup + i)))
        await asyncio.gather(*tasks)
        achieved = total / (time.perf_counter() - start)
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p99": q[98], "achieved": achieved, "failures": failures}


async def healthz_latency(url: str, rate: float, seconds: float) -> dict[str, float]:
    """``GET /healthz`` at ``rate`` for ``seconds``: the same server's floor (no token, no
    database), the baseline of an endpoint's latency in the same run."""

    async def get(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.get(f"{url}/healthz") as r:
            await r.read()
            return r.status == 200

    return await open_loop(get, rate=rate, seconds=seconds)


async def raw_consume_rate(bootstrap: str, n: int, topic: str = AGENT_COST.name) -> float:
    """``topic`` (default ``agent.cost.v1``) read by a bare aiokafka consumer in this process,
    the baseline of a stream service's rate over the same records: per second from its first
    record to the n-th (as the services are timed), so joining the broker is in neither figure."""
    settings = CommonSettings(kafka_bootstrap=bootstrap)
    start, count = 0.0, 0
    async for _ in read_topic(settings, topic, idle_s=10.0):
        if count == 0:
            start = time.perf_counter()
        count += 1
        if count >= n:
            break
    return (count - 1) / (time.perf_counter() - start)


async def counter_value(session: aiohttp.ClientSession, url: str, series: str) -> int:
    """The value of one Prometheus series (name and labels, as exposed) at ``url/metrics``."""
    async with session.get(f"{url}/metrics") as r:
        text = await r.text()
    m = re.search(re.escape(series) + r" (\S+)", text)
    return int(float(m.group(1))) if m else 0


async def counter_rate(url: str, series: str, n: int) -> float:
    """Per second, how fast the counter ``series`` grows from its first increment to ``n``."""
    async with aiohttp.ClientSession() as session:
        while await counter_value(session, url, series) == 0:
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        first = await counter_value(session, url, series)
        # A scrape renders every metric of the service: polled often, it would slow what is
        # measured (the counter is read to within a fifth of a second of the end).
        while (done := await counter_value(session, url, series)) < n:
            await asyncio.sleep(0.2)
        return (done - first) / (time.perf_counter() - start)
