"""Fakes of the Kafka consumer and the stores that stream intakes use, for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import OffsetAndMetadata, TopicPartition


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
    from finops.experiments.adapters.analysis_intake import AnalysisIntake

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


# -- OwnedPartitions.run, driven poll by poll ----------------------------------------------


@dataclass
class Poll:
    """What one ``getmany`` answers (partition -> record offsets), and the rebalance that
    runs while it waits (as aiokafka runs a listener during a poll)."""

    records: dict[int, list[int]]
    during: Callable[[], Awaitable[None]] | None = None


class ScriptedConsumer:
    """Answers the scripted polls in turn, then asks the loop to stop; remembers every seek
    and commit. ``value(partition, offset)``: a record's value (None without it)."""

    def __init__(
        self,
        stop: asyncio.Event,
        topic: str,
        value: Callable[[int, int], bytes] | None = None,
    ) -> None:
        self.stop = stop
        self.topic = topic
        self.value = value
        self.polls: list[Poll] = []
        self.sought: dict[TopicPartition, int] = {}
        self.from_beginning: list[TopicPartition] = []
        self.commits: list[dict[TopicPartition, int]] = []
        #: the end of each partition's log (by default: past the last offset scripted)
        self.ends: dict[int, int] = {}
        #: the start of each partition's log, the first offset retention kept (by default 0)
        self.starts: dict[int, int] = {}
        #: how many times the log's start was asked (one request to the broker each)
        self.start_asks = 0
        self._read_to: dict[int, int] = {}

    def record(self, partition: int, offset: int) -> SimpleNamespace:
        return SimpleNamespace(
            topic=self.topic,
            partition=partition,
            offset=offset,
            value=None if self.value is None else self.value(partition, offset),
            key=None,
            headers=(),
        )

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, list[Any]]:
        if not self.polls:
            self.stop.set()
            return {}
        poll = self.polls.pop(0)
        if poll.during is not None:
            await poll.during()
        for partition, offsets in poll.records.items():
            if offsets:
                end = max(offsets) + 1
                self._read_to[partition] = max(self._read_to.get(partition, 0), end)
        return {
            TopicPartition(self.topic, partition): [self.record(partition, o) for o in offsets]
            for partition, offsets in poll.records.items()
        }

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.sought[partition] = offset

    async def seek_to_beginning(self, partition: TopicPartition) -> None:
        self.from_beginning.append(partition)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's :attr:`ends`, else the offset after the last one scripted
        (polled or still to be)."""
        scripted = dict(self._read_to)
        for poll in self.polls:
            for partition, offsets in poll.records.items():
                if offsets:
                    scripted[partition] = max(scripted.get(partition, 0), max(offsets) + 1)
        return {tp: self.ends.get(tp.partition, scripted.get(tp.partition, 0)) for tp in partitions}

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Each partition's :attr:`starts` (by default 0)."""
        self.start_asks += 1
        return {tp: self.starts.get(tp.partition, 0) for tp in partitions}

    async def committed(self, partition: TopicPartition) -> int | None:
        return None  # no offset committed by a version before checkpoints

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append({p: meta.offset for p, meta in offsets.items()})


class OtherTask:
    """Another task on the loop (a request, a heartbeat): counts the turns it gets and, at its
    first, runs ``first`` (a rebalance, which takes the stage's lock)."""

    def __init__(self) -> None:
        self.turns = 0
        self.first: Callable[[], Awaitable[None]] | None = None

    async def run(self) -> None:
        while True:
            self.turns += 1
            if self.turns == 1 and self.first is not None:
                await self.first()
            await asyncio.sleep(0)


async def run_beside(owner: Any, consumer: ScriptedConsumer, other: OtherTask) -> None:
    """Run ``owner``'s loop (an :class:`~finops.common.owned_partitions.OwnedPartitions`)
    until its scripted polls are done, ``other`` taking turns beside; ``other`` first runs
    when the loop first hands the event loop back, after the first turn of a poll."""
    beside = asyncio.create_task(other.run())
    try:
        await owner.run(consumer.stop)
    finally:
        beside.cancel()


async def crash_after_first(
    owner: Any, consumer: ScriptedConsumer, other: OtherTask
) -> Exception | None:
    """Like :func:`run_beside`, but the process dies (the loop is cancelled, nothing more of
    it runs: no :meth:`after_batch`, no last checkpoint) once ``other.first`` is done; what
    ``first`` raised (aiokafka logs and ignores what a rebalance listener raises)."""
    loop = asyncio.create_task(owner.run(consumer.stop))  # its first turn comes first
    first = other.first
    raised: list[Exception] = []

    async def then_crash() -> None:
        try:
            if first is not None:
                await first()
        except Exception as exc:
            raised.append(exc)
        finally:
            loop.cancel()

    other.first = then_crash
    beside = asyncio.create_task(other.run())
    try:
        await asyncio.wait([loop])
    finally:
        beside.cancel()
    assert loop.cancelled(), "the loop ended before the crash"
    return raised[0] if raised else None


#: turns of the event loop a fake waits for a state before the test fails (none of these
#: waits needs more than a few dozen; a wait that never ends fails here, not at pytest's timeout)
TURNS_ALLOWED = 10_000


async def turns_until(condition: Callable[[], bool], what: str) -> None:
    """Give the other tasks turns until ``condition()`` holds; AssertionError naming ``what``
    after :data:`TURNS_ALLOWED` turns without it."""
    for _ in range(TURNS_ALLOWED):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened in {TURNS_ALLOWED} turns: {what}")


def after_a_turn(
    owner: Any, partition: int, action: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """For :attr:`OtherTask.first`: ``action`` (a rebalance) as soon as a turn of
    ``partition``'s records is applied (its offset moved), before the loop's next turn. A
    stage whose loop starts tasks of its own (a ticker beside it) may give ``other`` its first
    turn before any poll."""

    async def waiting() -> None:
        before = owner.offsets.get(partition)
        await turns_until(
            lambda: owner.offsets.get(partition) != before, f"a turn of partition {partition}"
        )
        await action()

    return waiting


def two_variant_definition(
    max_duration_s: float = 3600,
    guardrails: Any = None,
    metric: str = "cost_per_success",
    **options: Any,
) -> Any:
    """An experiment on task type ``t``: variant A (model ``big``) against B (``small``),
    deciding after 50 samples per variant at the soonest (``guardrails``: a dict of
    :class:`~finops.experiments.domain.definition.Guardrails`' fields; ``options``: the
    other arguments of ``build_definition``, ``name``, ``min_samples``, ``alpha``, ...)."""
    from finops.experiments.domain.definition import Guardrails, build_definition

    return build_definition(
        **{"name": "e", "min_samples": 50, **options},
        task_type="t",
        variants=[
            {"name": "A", "model": "big", "provider": "p"},
            {"name": "B", "model": "small", "provider": "p"},
        ],
        known_task_types={"t"},
        max_duration_s=max_duration_s,
        guardrails=Guardrails(**guardrails) if guardrails else None,
        metric=metric,
    )
