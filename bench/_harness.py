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


async def raw_consume_rate(bootstrap: str, topic: str, n: int) -> float:
    """Records/s of a bare aiokafka read of ``topic`` from its start (the baseline of a
    consumer's rate, measured in this process)."""
    from finops.common.kafka import read_topic
    from finops.common.settings import CommonSettings

    settings = CommonSettings(kafka_bootstrap=bootstrap)
    start, count = time.perf_counter(), 0
    async for _ in read_topic(settings, topic, idle_s=1.0):
        count += 1
        if count >= n:
            break
    return count / (time.perf_counter() - start)


async def counter_rate(url: str, counter: str, n: int) -> float:
    """Per second, how fast the Prometheus sample ``counter`` (its full text before the value,
    labels included) of the service at ``url`` rises from its first increase to ``n``."""
    pattern = re.compile(re.escape(counter) + r" (\S+)")

    async def value(session: aiohttp.ClientSession) -> int:
        async with session.get(f"{url}/metrics") as r:
            found = pattern.search(await r.text())
        return int(float(found.group(1))) if found else 0

    async with aiohttp.ClientSession() as session:
        while await value(session) == 0:
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        first = await value(session)
        while (done := await value(session)) < n:
            await asyncio.sleep(0.05)
        return (done - first) / (time.perf_counter() - start)
