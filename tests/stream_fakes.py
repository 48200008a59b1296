"""Fakes of the Kafka consumer and the stores that stream intakes use, for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition


class BufferedConsumer:
    """Answers every poll at once, as aiokafka does with records already fetched."""

    def __init__(
        self,
        topic: str,
        stop: asyncio.Event,
        *,
        polls: int,
        body: bytes = b'{"data": {"task_type": "t"}}',
        per_poll: int = 1,
    ) -> None:
        self.topic = topic
        self.stop = stop
        self.last_poll = polls
        self.body = body
        self.per_poll = per_poll
        self.polls = 0
        self.offset = 0

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, list[Any]]:
        """``per_poll`` records a poll; asks the loop to stop at the last poll."""
        self.polls += 1
        if self.polls >= self.last_poll:
            self.stop.set()
        records = []
        for _ in range(self.per_poll):
            self.offset += 1
            records.append(
                SimpleNamespace(
                    topic=self.topic,
                    partition=0,
                    offset=self.offset,
                    value=self.body,
                    key=None,
                    headers=(),
                )
            )
        return {TopicPartition(self.topic, 0): records}

    def assignment(self) -> set[Any]:
        return set()

    async def commit(self, offsets: Any) -> None:
        return None


class LogConsumer:
    """A consumer over an in-memory log of ``records[partition]`` records per partition (the
    record at offset ``o`` has offset ``o``): a poll reads on from each partition's position,
    partition by partition, ``max_records`` in all, and moves the positions past what it
    returns, as aiokafka does; ``seek`` moves a position. A poll first waits for
    ``fetching`` when it is set (as aiokafka's waits for the fetcher), once. Asks the loop to
    stop once a poll finds nothing left; remembers every seek."""

    def __init__(self, topic: str, stop: asyncio.Event, records: dict[int, int]) -> None:
        self.stop = stop
        self.logs = {TopicPartition(topic, p): n for p, n in records.items()}
        self.positions = dict.fromkeys(self.logs, 0)
        self.polls = 0
        self.sought: list[tuple[int, int]] = []  # (partition, offset)
        self.fetching: asyncio.Event | None = None

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, list[Any]]:
        self.polls += 1
        if self.fetching is not None:
            fetching, self.fetching = self.fetching, None
            await fetching.wait()
        batch: dict[Any, list[Any]] = {}
        for tp, end in self.logs.items():
            start = self.positions[tp]
            stop = min(end, start + max_records - sum(map(len, batch.values())))
            if stop > start:
                batch[tp] = [
                    SimpleNamespace(
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=o,
                        value=b"",
                        key=None,
                        headers=(),
                    )
                    for o in range(start, stop)
                ]
                self.positions[tp] = stop
        if not batch:
            self.stop.set()
        return batch

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset
        self.sought.append((tp.partition, offset))

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.seek(tp, 0)

    def assignment(self) -> set[Any]:
        return set(self.logs)

    async def commit(self, offsets: Any) -> None:
        return None


class KeptProducer:
    """Keeps what is sent and acknowledges it at once (the dead letters, for one)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, bytes]]] = []

    async def send_and_wait(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = ()
    ) -> None:
        self.sent.append((topic, value, dict(headers or ())))


class NoStore:
    async def save(self, name: str, checkpoint: Any) -> None:
        return None


class NoExperiments:
    """No experiment defined; remembers the task types it is told about."""

    def __init__(self) -> None:
        self.task_types: set[str] = set()

    async def all(self) -> list[Any]:
        return []

    async def get(self, experiment_id: str) -> None:
        return None

    @asynccontextmanager
    async def unannounced(self) -> AsyncIterator[list[Any]]:
        yield []  # no start or stop to announce

    async def record_task_types(self, task_types: Any) -> None:
        self.task_types |= set(task_types)


def analysis_intake(consumer: Any = None, **options: Any) -> Any:
    """The experiments' :class:`AnalysisIntake` on these fakes (no producer, no experiment);
    ``options``: its keyword arguments (``resume`` by default refuses to be called)."""
    from finops.experiments.adapters.stream import AnalysisIntake

    async def never_resumed(saved: Any, cluster_id: Any) -> Any:
        raise AssertionError("no partition is assigned in this test")

    settings: dict[str, Any] = {
        "name": "t",
        "events_topic": "finops.experiment-events.v1",
        "experiments_topic": "finops.experiments.v1",
        "partitions": 3,
        "resume": never_resumed,
        **options,
    }
    return AnalysisIntake(
        consumer, producer=None, store=NoStore(), repo=NoExperiments(), **settings
    )
