"""Where `finops tail` (without --from-beginning) starts: on Apache Kafka at the end offset the
broker reports, so a record appended as the tail starts is printed; on the stack's own broker
(tansu, which reports an end inside the last batch) at the end a fetch finds, so the rest of
that batch is not printed as new. Driven through the CLI on a stand-in consumer."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from typer.testing import CliRunner

import finops.common.kafka
from finops.cli.main import app
from finops.common.settings import CommonSettings

TOPIC = "agent.cost.v1"
TP = TopicPartition(TOPIC, 0)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes = b"bot"
    headers: tuple[tuple[str, bytes], ...] = ()


class OnePartitionLog:
    """A consumer of one partition's log, in batches as a broker serves them.

    ``reported_end(log)`` is the end offset the broker answers; ``late`` records are appended
    right after it answers (a producer racing the tail's start), ``later`` ones once the tail
    has read up to the log's end (published while it runs).
    """

    def __init__(self, old: int, reported_end: Any, late: int = 0, later: int = 0) -> None:
        self.log: list[Record] = []
        self._append(old)
        self.reported_end = reported_end
        self.late, self.later = late, later
        self.position = 0
        self.settings: CommonSettings | None = None

    def _append(self, n: int) -> None:
        for _ in range(n):
            offset = len(self.log)
            self.log.append(Record(TOPIC, 0, offset, json.dumps({"n": offset}).encode()))

    def __call__(self, settings: CommonSettings, **_: Any) -> OnePartitionLog:
        self.settings = settings  # make_consumer's stand-in
        return self

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0} if topic == TOPIC else set()

    def assign(self, tps: list[TopicPartition]) -> None:
        assert tps == [TP]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        end = self.reported_end(len(self.log))
        self._append(self.late)
        return {TP: end}

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        if self.position >= len(self.log) and self.later:
            self._append(self.later)
            self.later = 0
        records = self.log[self.position :]
        self.position = len(self.log)
        if not records:
            await asyncio.sleep(0.01)  # a broker's fetch waits before it answers nothing
            return {}
        return {TP: records}


def tail(log: OnePartitionLog, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    monkeypatch.setattr(finops.common.kafka, "make_consumer", log)
    args = ["tail", TOPIC, "--json", "--max", "2", "--idle-timeout", "0.3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line)["value"]["n"] for line in result.stdout.splitlines()]


def test_on_apache_kafka_a_record_appended_as_the_tail_starts_is_printed(monkeypatch):
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", "kafka-0:9092")  # a broker of one's own
    monkeypatch.delenv("FINOPS_KAFKA_END_OFFSET_IN_LAST_BATCH", raising=False)
    log = OnePartitionLog(old=5, reported_end=lambda end: end, late=1, later=1)
    assert tail(log, monkeypatch) == [5, 6]
    assert log.settings is not None
    assert log.settings.kafka_end_offset_in_last_batch is False


def test_on_the_stacks_own_broker_the_rest_of_the_last_batch_is_not_printed_as_new(
    monkeypatch,
):
    monkeypatch.delenv("FINOPS_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("FINOPS_KAFKA_END_OFFSET_IN_LAST_BATCH", raising=False)
    # tansu: the end offset after the first record of the last batch (records 2 to 4)
    log = OnePartitionLog(old=5, reported_end=lambda end: 3, later=2)
    assert tail(log, monkeypatch) == [5, 6]
    assert log.settings is not None
    assert log.settings.kafka_end_offset_in_last_batch is True
