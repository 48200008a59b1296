"""Optimizer workers with partitioned learning, started beside a private stack's services,
for measuring how the learning rate scales with the number of workers (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import aiohttp
from _harness import Series, kafka_settings, note, produce_events
from _rates import Progress, Rate

from finops.cli.stack.local_stack import Stack
from finops.cli.stack.ports import free_port
from finops.common.topic_admin import ensure_topics
from finops.common.topics import (
    AGENT_COST,
    AGENT_ERROR,
    EXPERIMENTS,
    OPTIMIZER_EVENTS,
    OPTIMIZER_SHARDS,
    TopicSpec,
    dlq_spec,
)


@dataclass(frozen=True)
class Lane:
    """Topics, groups and checkpoint names of their own: one measurement's workers read
    nothing another measurement wrote."""

    tag: str

    def spec(self, like: TopicSpec) -> TopicSpec:
        return TopicSpec(
            f"bench.{self.tag}.{like.name}",
            like.partitions,
            like.key,
            like.description,
            retention_ms=like.retention_ms,
            cleanup_policy=like.cleanup_policy,
            consumed=like.consumed,
        )

    def topics(self) -> list[TopicSpec]:
        primary = [self.spec(t) for t in (AGENT_COST, AGENT_ERROR, EXPERIMENTS, OPTIMIZER_EVENTS)]
        return [*primary, *(dlq_spec(t) for t in primary), self.spec(OPTIMIZER_SHARDS)]

    def env(self) -> dict[str, str]:
        name = self.spec
        return {
            "FINOPS_PARTITIONED_LEARNING": "true",
            "FINOPS_COST_TOPIC": name(AGENT_COST).name,
            "FINOPS_ERROR_TOPIC": name(AGENT_ERROR).name,
            "FINOPS_EXPERIMENTS_TOPIC": name(EXPERIMENTS).name,
            "FINOPS_LEARNING_TOPIC": name(OPTIMIZER_EVENTS).name,
            "FINOPS_SHARDS_TOPIC": name(OPTIMIZER_SHARDS).name,
            "FINOPS_FORWARD_GROUP": f"bench-forward-{self.tag}",
            "FINOPS_OWNER_GROUP": f"bench-owners-{self.tag}",
            "FINOPS_CHECKPOINT_NAME": f"bench-{self.tag}",
        }


@contextlib.contextmanager
def workers(stack: Stack, lane: Lane, count: int) -> Iterator[list[str]]:
    """``count`` optimizer workers on the stack's PostgreSQL, Redis, broker and auth: their URLs."""
    processes, urls = [], []
    log = (stack.root / "logs" / f"bench-workers-{lane.tag}.log").open("ab")
    try:
        for _ in range(count):
            port = free_port()
            env = {**os.environ, **stack.service_env(), **lane.env(), "FINOPS_PORT": str(port)}
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "finops.optimizer"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            urls.append(f"http://{stack.settings.bind_host}:{port}")
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


async def split_between(urls: list[str], limit_s: float = 180) -> None:
    """Wait until every worker owns a share of the learning partitions and all are owned
    (``finops_optimizer_owned_partitions`` of each worker's /metrics)."""
    owned_gauge = Series("finops_optimizer_owned_partitions")
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while True:
            owned = []
            for url in urls:
                try:
                    async with session.get(f"{url}/metrics") as r:
                        owned.append(_gauge(await r.text(), owned_gauge.name))
                except aiohttp.ClientError:
                    owned.append(0.0)
            if all(owned) and sum(owned) == OPTIMIZER_EVENTS.partitions:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the learning partitions did not split: {owned}")
            await asyncio.sleep(0.3)


def _gauge(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def summed_rate(urls: list[str], series: Series, n: int, limit_s: float = 600) -> Rate:
    """Per second, ``n`` over the time from now (the events are being produced) until
    ``series`` summed over the workers reaches ``n``: forwarding, learning and the broker's
    round trips included, the same for any number of workers. Its samples: the scrapes that
    saw the sum rise."""
    deadline = time.monotonic() + limit_s
    progress = Progress(f"{series} summed over {len(urls)} worker(s)")
    progress.saw(0)
    async with aiohttp.ClientSession() as session:
        while True:
            done = 0.0
            for url in urls:
                async with session.get(f"{url}/metrics") as r:
                    done += series.total(await r.text())
            progress.saw(min(done, n))
            if done >= n:
                return progress.rate()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{series} reached {done:.0f} of {n} in {limit_s:.0f} s")
            # a scrape renders every metric: polled often, it would slow what is measured
            await asyncio.sleep(0.1)


async def learning_rate(stack: Stack, count: int, events: Iterable[dict], n: int) -> Rate:
    """Events/s the learning of ``count`` workers applies, over ``n`` events produced once
    the workers have split the partitions."""
    lane = Lane(uuid.uuid4().hex[:8])
    settings = kafka_settings(stack.kafka_bootstrap, stack.local_broker)
    await ensure_topics(settings, lane.topics())
    with workers(stack, lane, count) as urls:
        note(f"{count} partitioned worker(s): waiting for the partitions to split …")
        await split_between(urls)
        applied = Series(
            "finops_optimizer_events_total",
            (("outcome", "applied"), ("topic", lane.spec(OPTIMIZER_EVENTS).name)),
        )
        watcher = asyncio.create_task(summed_rate(urls, applied, n))
        await produce_events(settings, lane.spec(AGENT_COST).name, events)
        return await watcher
