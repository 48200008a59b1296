"""The benchmark scripts' open-loop load: requests fired at a fixed rate whether or not earlier
ones returned, the share of them that may fail, and the printed and recorded latency figures."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator

import aiohttp
from _figures import Measurement, at_most, record


class RequestsFailed(RuntimeError):
    """Requests of a load were not answered with success: its latencies would be of refusals."""


#: the share of a load's requests that may fail (a timeout on a loaded machine) before its
#: figures count as measuring failures: a refusal of every request (a wrong token, another
#: agent's id) is far above it; the failures are counted in the figure's detail either way
FAILURES_ALLOWED = 0.05


def require_success(what: str, statuses: dict[int, int] | dict[str, int], ok: int = 200) -> None:
    """Raise :class:`RequestsFailed` when more than :data:`FAILURES_ALLOWED` of the requests
    of ``what`` were not answered ``ok`` (``statuses``: how many requests got each status; a
    status may be its JSON text)."""
    failed = {int(status): n for status, n in statuses.items() if int(status) != ok}
    if sum(failed.values()) > FAILURES_ALLOWED * sum(statuses.values()):
        raise RequestsFailed(
            f"{what}: {sum(failed.values())} of {sum(statuses.values())} requests not answered "
            f"{ok} (statuses {failed}): the figures would measure failures"
        )


async def service_cpu_s(url: str) -> float:
    """CPU seconds the service at ``url`` has used (its ``process_cpu_seconds_total``, from
    prometheus-client's process collector; NaN where the platform has none)."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as r:
        text = await r.text()
    found = re.search(r"^process_cpu_seconds_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else math.nan


async def open_loop(
    request: Callable[[aiohttp.ClientSession, int], Awaitable[bool]],
    *,
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
    warmup: int = 50,
    server: str | None = None,
) -> dict[str, float]:
    """Fire ``request(session, i)`` at a fixed rate, whether or not earlier ones returned.

    Open loop, so a slow server shows up as latency instead of a lower request rate.
    Returns p50/p99 in ms, the achieved rate and the number of failed requests; when more
    than :data:`FAILURES_ALLOWED` of them (the warm-up's included) fail, raises
    :class:`RequestsFailed` instead, since the latencies would be those of the failures.

    Given the ``server``'s URL, also returns ``cpu_ms``: the CPU time that service used per
    request, read from its ``/metrics`` before and after the load, so it also holds those two
    scrapes, the warm-up and whatever the service did in the background meanwhile (on an idle
    service, little). A tail latency on a shared machine swings with what else runs; the CPU
    a request costs the service barely does, so it tells a slower code path from a busier
    machine.
    """
    cpu_before = await service_cpu_s(server) if server else math.nan
    figures = await _fire(request, rate=rate, seconds=seconds, headers=headers, warmup=warmup)
    cpu_used = await service_cpu_s(server) - cpu_before if server else math.nan
    return {**figures, "cpu_ms": cpu_used * 1000 / figures["requests"]}


async def _fire(
    request: Callable[[aiohttp.ClientSession, int], Awaitable[bool]],
    *,
    rate: float,
    seconds: float,
    headers: dict[str, str] | None,
    warmup: int,
) -> dict[str, float]:
    """:func:`open_loop`'s load: its latency figures and the requests sent (warm-up too)."""
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
        with _no_collections():
            start = time.perf_counter()
            for i in range(total):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(warmup + i)))
            await asyncio.gather(*tasks)
            achieved = total / (time.perf_counter() - start)
    if failures > FAILURES_ALLOWED * (warmup + total):
        raise RequestsFailed(
            f"{failures:.0f} of {warmup + total} requests failed: the latencies would be "
            "those of the failures"
        )
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50": q[49],
        "p99": q[98],
        "achieved": achieved,
        "failures": failures,
        "requests": warmup + total,
    }


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """No garbage collection in this process while the load runs.

    A benchmark script holds what its earlier steps made (tens of thousands of records), and
    a full collection of that heap paused it 80-100 ms: every request in flight then read
    that late, and a 10 s load at 500/s has its p99 in its 50 slowest requests, so one pause
    in the load's window was the p99, a measure of the client instead of the service.
    """
    gc.collect()
    gc.freeze()  # what the script holds is not looked at again
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def healthz_latency(url: str, rate: float, seconds: float) -> dict[str, float]:
    """``GET /healthz`` at ``rate`` for ``seconds``: the same server's floor (no token, no
    database), the baseline of an endpoint's latency in the same run."""

    async def get(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.get(f"{url}/healthz") as r:
            await r.read()
            return r.status == 200

    return await open_loop(get, rate=rate, seconds=seconds, server=url)


def latency_line(name: str, lat: dict[str, float], remark: str = "") -> str:
    """One printed line of an open-loop run: achieved rate, p50, p99, failures."""
    return (
        f"  {name:<34} at {lat['achieved']:.0f}/s   p50 {lat['p50']:.1f} ms   "
        f"p99 {lat['p99']:.1f} ms   failures {lat['failures']:.0f}{cpu_note(lat)}{remark}"
    )


def cpu_note(lat: dict[str, float]) -> str:
    """The service's CPU per request of a load, when it was measured."""
    cpu_ms = lat.get("cpu_ms", math.nan)
    return "" if math.isnan(cpu_ms) else f"   service CPU {cpu_ms:.2f} ms/request"


def record_p99_against_healthz(
    name: str, lat: dict[str, float], healthz: dict[str, float], target_ms: float, source: str
) -> None:
    """Record an endpoint's p99 next to ``GET /healthz``'s of the same server, same rate."""
    record(
        Measurement(name, lat["p99"], "ms"),
        Measurement("GET /healthz p99, same rate", healthz["p99"], "ms"),
        at_most(target_ms, source),
        detail=f"p50 {lat['p50']:.1f} ms, {lat['failures']:.0f} failures{cpu_detail(lat, healthz)}",
    )


def cpu_detail(lat: dict[str, float], healthz: dict[str, float]) -> str:
    """The service's CPU per request of a load and of ``/healthz``'s, for a figure's detail."""
    if math.isnan(lat.get("cpu_ms", math.nan)):
        return ""
    base = healthz.get("cpu_ms", math.nan)
    floor = "" if math.isnan(base) else f" (/healthz {base:.2f} ms)"
    return f", service CPU {lat['cpu_ms']:.2f} ms/request{floor}"
