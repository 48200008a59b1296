"""``read_topic`` against a fake consumer: when a read ends, and that it never hangs.

A read ends once every partition has reached its end (the end offset the broker reported at
its start, or the high watermark its fetches report, the larger) and a poll came back empty; a
partition that stops short of it for ``stall_s`` is an error, not a shorter topic (the broker
went away, or a partition cannot be read).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest
from aiokafka import TopicPartition

from finops.common import kafka
from finops.common.kafka import TopicReadStalled, read_topic
from finops.common.settings import CommonSettings

TOPIC = "t"


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.value = b"%d" % offset


class _FakeConsumer:
    """One partition whose broker reports ``end`` and serves ``served`` records, one poll each
    (``None`` in ``polls``: an empty poll, no fetch answered yet; ``0``: a fetch answered
    with no record); ``position`` hangs when ``hang`` is set. Once a fetch has been answered,
    the high watermark is ``highwater`` (default: ``end``)."""

    def __init__(
        self, end: int, polls: list[int | None], hang: bool = False, highwater: int | None = None
    ) -> None:
        self.end, self.polls, self.hang = end, deque(polls), hang
        self.next_offset = 0
        self.fetched_highwater = end if highwater is None else highwater
        self.answered = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        pass

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.end for tp in tps}

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        count = self.polls.popleft() if self.polls else None
        if count is None:
            return {}
        self.answered = True
        if count == 0:
            return {}
        records = [_Record(self.next_offset + i) for i in range(count)]
        self.next_offset += count
        return {TopicPartition(TOPIC, 0): records}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.fetched_highwater if self.answered else None

    async def position(self, tp: TopicPartition) -> int:
        if self.hang:
            await asyncio.Event().wait()
        return self.next_offset


def _use(monkeypatch: pytest.MonkeyPatch, consumer: _FakeConsumer) -> None:
    monkeypatch.setattr(kafka, "make_consumer", lambda *args, **kwargs: consumer)


async def _read(idle_s: float = 0.0, **kwargs: Any) -> list[int]:
    settings = CommonSettings(kafka_bootstrap="localhost:1")
    return [r.offset async for r in read_topic(settings, TOPIC, idle_s=idle_s, **kwargs)]


async def test_a_read_goes_on_past_empty_polls_until_the_end_offset(monkeypatch) -> None:
    # the first fetches are slow: under the old rule (quiet alone) the read ended at once
    _use(monkeypatch, _FakeConsumer(end=5, polls=[None, None, 3, None, 2]))
    assert await _read(stall_s=60.0) == [0, 1, 2, 3, 4]


async def test_a_read_goes_on_to_the_high_watermark_past_an_end_offset_short_of_it(
    monkeypatch,
) -> None:
    # the local broker reported end offsets far short of the log's end (1 for a partition of
    # 9 records): the read ended at the first empty poll past them, a count came out short
    _use(monkeypatch, _FakeConsumer(end=1, highwater=5, polls=[2, None, 3]))
    assert await _read(stall_s=60.0) == [0, 1, 2, 3, 4]


async def test_a_partition_no_fetch_answered_yet_is_not_read_to_its_end(monkeypatch) -> None:
    # an end offset of 0 (reported short, or an empty partition) is no end until a fetch says
    _use(monkeypatch, _FakeConsumer(end=0, highwater=4, polls=[None, None, 4]))
    assert await _read(stall_s=60.0) == [0, 1, 2, 3]
    _use(monkeypatch, _FakeConsumer(end=0, polls=[None, 0]))  # empty: read once answered
    assert await _read(stall_s=60.0) == []


async def test_a_partition_never_fetched_is_a_stall_that_says_so(monkeypatch) -> None:
    _use(monkeypatch, _FakeConsumer(end=0, polls=[]))
    with pytest.raises(TopicReadStalled, match=r"with partition 0 never fetched$"):
        await _read(stall_s=0.05)


async def test_a_partition_stuck_short_of_its_end_offset_is_an_error(monkeypatch) -> None:
    _use(monkeypatch, _FakeConsumer(end=5, polls=[3]))
    with pytest.raises(
        TopicReadStalled, match=r"reading t: no record for 0 s with partition 0 at 3 of 5"
    ):
        await _read(stall_s=0.05)


async def test_a_broker_that_never_tells_the_position_is_an_error_not_a_hang(monkeypatch) -> None:
    _use(monkeypatch, _FakeConsumer(end=5, polls=[0], hang=True))
    with pytest.raises(TopicReadStalled, match="partition 0 at an unknown offset of 5"):
        await _read(stall_s=0.05)


async def test_a_whole_topic_ends_the_read_after_the_quiet_without_error(monkeypatch) -> None:
    # a stall shorter than the quiet is raised to it: a topic read whole is never a stall
    _use(monkeypatch, _FakeConsumer(end=3, polls=[None, 3]))
    assert await _read(idle_s=0.05, stall_s=0.0) == [0, 1, 2]


async def test_the_callers_timeout_ends_a_short_read_with_what_it_has(monkeypatch) -> None:
    _use(monkeypatch, _FakeConsumer(end=5, polls=[3]))
    assert await _read(stall_s=60.0, timeout_s=0.05) == [0, 1, 2]


async def test_the_callers_timeout_also_bounds_the_wait_for_positions(monkeypatch) -> None:
    _use(monkeypatch, _FakeConsumer(end=5, polls=[3], hang=True))
    assert await _read(stall_s=60.0, timeout_s=0.05) == [0, 1, 2]


async def test_until_ends_the_read_before_the_end_offsets(monkeypatch) -> None:
    _use(monkeypatch, _FakeConsumer(end=5, polls=[2]))
    assert await _read(stall_s=60.0, until=lambda: True) == [0, 1]
