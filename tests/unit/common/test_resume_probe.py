"""Where a checkpointed consumer resumes when the broker is slow to answer the probe: a saved
offset within the end offset the broker reports is kept (a probe that timed out proves
nothing), one beyond it resumes from the earliest offset, and without an end offset reported
nothing is decided: the error is raised (fakes for the consumer)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from support import MetadataRefreshes

from finops.common import log_position
from finops.common.settings import CommonSettings


class SilentBroker:
    """A consumer whose fetches never come back in time, with the end offsets given."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.ends = ends

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.ends if tp.topic == topic}

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    async def getmany(self, *partitions: Any, **options: Any) -> dict[Any, list[Any]]:
        return {}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions}


async def test_a_probe_without_answer_keeps_an_offset_within_the_reported_end(
    monkeypatch,
) -> None:
    # A loaded local broker took over 3 s to answer; the healer and the optimizer then read
    # whole partitions again from offset 0 ("past the end"), counting anew every event older
    # than their memories of ids.
    broker = SilentBroker(
        {TopicPartition("t", 0): 3614, TopicPartition("t", 1): 0, TopicPartition("t", 2): 10}
    )
    monkeypatch.setattr(log_position, "make_consumer", lambda *args, **kwargs: broker)
    verdict = await log_position._offsets_the_log_holds(
        CommonSettings(), {"t:0": 3238, "t:1": 5, "t:2": 404}, timeout_s=0.05
    )
    assert verdict["t:0"] is None
    assert verdict["t:1"] is not None and "past the end" in verdict["t:1"]
    assert verdict["t:2"] is not None and "past the end" in verdict["t:2"]


class MuteBroker(SilentBroker):
    """Nor does it report end offsets (a leader moving in a rolling restart)."""

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        raise KafkaTimeoutError()


async def test_a_broker_that_reports_no_end_offsets_either_is_not_taken_as_past_the_end(
    monkeypatch,
) -> None:
    # Judged past the end, the partition was read again from its earliest offset into the
    # restored state: every retained record applied a second time. No answer decides nothing:
    # the error goes to the caller (a start-up or an adoption that fails, and is tried again).
    broker = MuteBroker({TopicPartition("t", 0): 3614})
    monkeypatch.setattr(log_position, "make_consumer", lambda *args, **kwargs: broker)
    with pytest.raises(KafkaTimeoutError):
        await log_position._offsets_the_log_holds(CommonSettings(), {"t:0": 3238}, timeout_s=0.05)


class ForgetfulBroker(SilentBroker):
    """Reports end offsets, but not of every partition asked."""

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions if tp.partition != 0}


async def test_a_partition_whose_end_offset_is_not_reported_is_not_taken_as_past_the_end(
    monkeypatch,
) -> None:
    broker = ForgetfulBroker({TopicPartition("t", 0): 3614, TopicPartition("t", 1): 10})
    monkeypatch.setattr(log_position, "make_consumer", lambda *args, **kwargs: broker)
    with pytest.raises(KafkaError, match="t:0"):
        await log_position._offsets_the_log_holds(
            CommonSettings(), {"t:0": 3238, "t:1": 5}, timeout_s=0.05
        )


class MetadataHiccupBroker(MetadataRefreshes, SilentBroker):
    """Its first metadata leaves the topic out (a topic-level error, which aiokafka drops);
    a fresh metadata request holds it again unless ``lasting``."""

    def __init__(self, ends: dict[TopicPartition, int], *, lasting: bool) -> None:
        super().__init__(ends)
        self.lasting = lasting
        self.refreshed = 0

    def partitions_for_topic(self, topic: str) -> set[int] | None:  # type: ignore[override]
        return None if self.lasting or not self.refreshed else super().partitions_for_topic(topic)


async def test_a_topic_missing_from_the_metadata_is_asked_again_then_not_taken_as_gone(
    monkeypatch,
) -> None:
    # Read as "partition t:0 no longer exists", the partition was reset to its earliest
    # offset under the restored state: every retained record applied a second time.
    recovering = MetadataHiccupBroker({TopicPartition("t", 0): 3614}, lasting=False)
    monkeypatch.setattr(log_position, "make_consumer", lambda *args, **kwargs: recovering)
    verdict = await log_position._offsets_the_log_holds(
        CommonSettings(), {"t:0": 3238}, timeout_s=0.05
    )
    assert (verdict, recovering.refreshed) == ({"t:0": None}, 1)

    lasting = MetadataHiccupBroker({TopicPartition("t", 0): 3614}, lasting=True)
    monkeypatch.setattr(log_position, "make_consumer", lambda *args, **kwargs: lasting)
    with pytest.raises(KafkaError, match="the broker's metadata holds no topic t"):
        await log_position._offsets_the_log_holds(CommonSettings(), {"t:0": 3238}, timeout_s=0.05)


class LastBatchBroker(SilentBroker):
    """tansu under load: a fetch of the saved offset gets nothing in time, its end offsets are
    the offset after the first record of the last batch, and a fetch of that batch answers
    with its records up to ``true_ends`` (none when ``answers`` is false)."""

    def __init__(
        self, ends: dict[TopicPartition, int], true_ends: dict[TopicPartition, int], answers: bool
    ) -> None:
        super().__init__(ends)
        self.true_ends = true_ends
        self.answers = answers
        self.position: dict[TopicPartition, int] = {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position[tp] = offset

    async def getmany(self, *partitions: Any, **options: Any) -> dict[Any, list[Any]]:
        answered = {}
        for tp in partitions:
            at = self.position[tp]
            if self.answers and at == self.ends[tp] - 1:  # the last batch, never the probe
                answered[tp] = [SimpleNamespace(offset=o) for o in range(at, self.true_ends[tp])]
        return answered


async def test_an_offset_in_the_last_batch_of_a_broker_reporting_its_start_is_kept(
    monkeypatch,
) -> None:
    # A review (2 optimizer workers, one stopped under load): saved 2100, reported end 2087,
    # true end 2119; judged past the end, the partition was read again from offset 0 into
    # the kept state (928 events redelivered).
    t0, t1 = TopicPartition("t", 0), TopicPartition("t", 1)
    broker = LastBatchBroker({t0: 2087, t1: 50}, {t0: 2119, t1: 60}, answers=True)
    monkeypatch.setattr(log_position, "make_consumer", lambda *args, **kwargs: broker)
    settings = CommonSettings(kafka_end_offset_in_last_batch=True)
    verdict = await log_position._offsets_the_log_holds(
        settings, {"t:0": 2100, "t:1": 404}, timeout_s=0.05
    )
    assert verdict["t:0"] is None
    assert verdict["t:1"] is not None and "past the end" in verdict["t:1"]


async def test_a_last_batch_the_broker_does_not_answer_either_decides_nothing(monkeypatch):
    broker = LastBatchBroker(
        {TopicPartition("t", 0): 2087}, {TopicPartition("t", 0): 2119}, answers=False
    )
    monkeypatch.setattr(log_position, "make_consumer", lambda *args, **kwargs: broker)
    settings = CommonSettings(kafka_end_offset_in_last_batch=True)
    with pytest.raises(KafkaError, match="no fetch of the last batch of t:0"):
        await log_position._offsets_the_log_holds(settings, {"t:0": 2100}, timeout_s=0.05)
