"""State owned partition by partition: the KTable pattern of Kafka Streams, on our stack.

A stage whose state is keyed (an experiment's statistics by experiment id, the optimizer's
learning by task type) reads an internal topic partitioned by that key (a forwarding stage
re-keys its input there, see :mod:`finops.common.partitions`). Each instance of the owner
group owns some partitions and, per partition, one *shard* of the state, checkpointed in a row
of its own with that partition's next offset. When a partition is assigned, its checkpoint is
loaded and the consumer seeks to its offset (to the beginning when there is none), and what a
poll returned from before that seek is dropped (read again from there); before one is revoked
it is checkpointed; offsets are committed to the group only after the checkpoint
that covers them. So a rebalance, a restart or a ``kill -9`` neither loses nor double-counts
an event: the next owner replays exactly the records after the last checkpoint, which no saved
state has seen.

A poll's records (up to ``batch_max_records``, 2,000: a catch-up's polls are full) are applied
``records_per_turn`` at a time, each turn under the stage's lock and followed by a turn of the
event loop with the lock released: the service's API, the consumers' heartbeats, a rebalance
and an operator's command share the loop (and the lock) and would otherwise wait for the whole
poll, 0.3 to 0.9 s on two busy cores.

:class:`OwnedPartitions` is the loop and the bookkeeping; a stage subclasses it and says how a
shard is loaded, saved and fed a partition's batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from finops.common.datastores import is_dependency_failure
from finops.common.kafka import start_subscribed
from finops.common.log_position import ResumePlan, partition_key
from finops.common.partitions import HANDLE_AT_ONCE

log = logging.getLogger(__name__)

Shard = TypeVar("Shard")

#: where to resume, given the offsets and the cluster id a checkpoint saved
Resume = Callable[[Mapping[str, int], str | None], Awaitable[ResumePlan]]


class _OwnAssignedPartitions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: OwnedPartitions[Any]) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner.release({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.owner.adopt({tp.partition for tp in assigned})


class OwnedPartitions(Generic[Shard]):
    """One shard of state per owned partition of ``topic``, checkpointed with its offset.

    Subclasses implement :meth:`load_shard`, :meth:`save_shard` and :meth:`handle`; they may
    extend :meth:`after_batch` (called under :attr:`lock` after every poll). Changing a shard
    outside :meth:`handle` (an operator's command, say) is done under :attr:`lock` and marks
    the partition in :attr:`dirty`.

    :meth:`handle` is given a partition's records ``records_per_turn`` at a time, under
    :attr:`lock`; the lock is released between two calls, so a rebalance, a checkpoint or an
    operator's command may come between two turns of one poll (and before its
    :meth:`after_batch`).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        *,
        resume: Resume,
        checkpoint_interval_s: float = 5.0,
        poll_timeout_ms: int = 200,
        batch_max_records: int = 2000,
        records_per_turn: int = HANDLE_AT_ONCE,
    ) -> None:
        if records_per_turn < 1:
            raise ValueError(f"records_per_turn must be at least 1, not {records_per_turn}")
        self.consumer = consumer
        self.topic = topic
        self.resume = resume
        self.checkpoint_interval_s = checkpoint_interval_s
        self.poll_timeout_ms = poll_timeout_ms
        self.batch_max_records = batch_max_records
        #: records applied between two turns of the event loop (and two holds of :attr:`lock`)
        self.records_per_turn = records_per_turn
        #: the shard of each partition this instance owns, and the next offset to read there
        self.shards: dict[int, Shard] = {}
        self.offsets: dict[int, int] = {}
        self.cluster_id: str | None = None
        #: partitions changed since their last checkpoint
        self.dirty: set[int] = set()
        #: how many times each partition was adopted, and sought (changed under :attr:`lock`):
        #: records polled before an adoption are read again from where it sought the partition
        self.adoptions: dict[int, int] = {}
        self.lock = asyncio.Lock()
        #: what adopting partitions failed with (the loop stops on it)
        self.failure: BaseException | None = None
        self._last_checkpoint = time.monotonic()

    # -- what a stage says ---------------------------------------------------------------

    async def load_shard(self, partition: int) -> tuple[Shard, Mapping[str, int], str | None]:
        """The partition's saved shard, the offsets and cluster id saved with it (empty and
        None for a new shard, which then reads the partition from its beginning)."""
        raise NotImplementedError

    async def save_shard(self, partition: int, shard: Shard, offsets: dict[str, int]) -> bool:
        """Save the shard with ``offsets``; False when a checkpoint further along exists (an
        instance that owned the partition later saved it: the offset is not committed)."""
        raise NotImplementedError

    async def handle(self, partition: int, shard: Shard, records: list[Any]) -> None:
        """Apply the next records of one partition (in order; at most ``records_per_turn``,
        one poll's records may come in several calls) to its shard."""
        raise NotImplementedError

    def released(self, partition: int, shard: Shard) -> None:
        """Called once a revoked partition's shard is forgotten, whether or not its last
        checkpoint succeeded (when it failed, the next owner replays from the one before)."""

    async def after_batch(self) -> None:
        """Called with :attr:`lock` held after every poll: checkpoints what changed once
        ``checkpoint_interval_s`` has passed since the last checkpoint."""
        if self.checkpoint_due():
            await self.checkpoint_or_retry_later()

    async def checkpoint_or_retry_later(self) -> None:
        """Checkpoint what changed; when PostgreSQL (or the broker) cannot take it now, try
        again an interval later: the records stay applied and their offsets uncommitted, so
        nothing is lost or counted twice, and the stage keeps learning meanwhile."""
        try:
            await self.checkpoint_locked()
        except Exception as exc:
            if not is_dependency_failure(exc) and not isinstance(exc, KafkaError):
                raise
            log.warning("checkpoint failed; retrying later", extra={"error": repr(exc)})
            self._last_checkpoint = time.monotonic()

    def checkpoint_due(self) -> bool:
        """Whether something changed and ``checkpoint_interval_s`` has passed since the last
        checkpoint."""
        return bool(self.dirty) and (
            time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s
        )

    # -- ownership -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the consumer; its group join and the adoption of the partitions it is
        assigned run in the background (:func:`~finops.common.kafka.start_subscribed`)."""
        await start_subscribed(self.consumer, [self.topic], _OwnAssignedPartitions(self))

    async def adopt(self, partitions: set[int]) -> None:
        """Load the checkpoints of newly assigned partitions and seek to their offsets.

        aiokafka ignores what a rebalance listener raises; a partition assigned without its
        shard would have its records skipped, so a failure here stops the loop instead
        (:meth:`run` raises it): the stage's readiness fails and nothing is skipped."""
        try:
            await self._adopt(partitions)
        except Exception as exc:
            log.exception("adopting partitions %s failed", sorted(partitions))
            self.failure = exc
            raise

    async def _adopt(self, partitions: set[int]) -> None:
        async with self.lock:
            # Each checkpoint's offsets are checked against the cluster it was saved on: one
            # saved before the broker was replaced holds offsets of the old log, even when this
            # instance adopted another partition's checkpoint of the new one first.
            saved_on: dict[str | None, dict[str, int]] = {}
            loaded: dict[int, Shard] = {}
            for partition in sorted(partitions - self.shards.keys()):
                shard, offsets, cluster_id = await self.load_shard(partition)
                loaded[partition] = shard
                saved_on.setdefault(cluster_id or self.cluster_id, {}).update(offsets)
            resumed: dict[str, int] = {}
            for cluster_id, offsets in (saved_on or {self.cluster_id: {}}).items():
                plan = await self.resume(offsets, cluster_id)
                resumed.update(plan.offsets)
            # Installed once the resume is planned: one installed before (the plan failed) took
            # the records fetched from wherever the consumer stood, and a checkpoint saved them.
            self.shards.update(loaded)
            self.cluster_id = plan.cluster_id
            for partition in sorted(partitions):
                tp = TopicPartition(self.topic, partition)
                offset = resumed.get(partition_key(tp), self.offsets.get(partition))
                if offset is None:
                    self.offsets.pop(partition, None)
                    await self.consumer.seek_to_beginning(tp)
                else:
                    self.offsets[partition] = offset
                    self.consumer.seek(tp, offset)
                self.adoptions[partition] = self.adoptions.get(partition, 0) + 1
            log.info(
                "partitions adopted", extra={"topic": self.topic, "adopted": sorted(partitions)}
            )

    async def release(self, partitions: set[int]) -> None:
        """Checkpoint revoked partitions, then forget them: their next owner starts there."""
        async with self.lock:
            owned = partitions & self.shards.keys()
            self.dirty |= owned
            try:
                await self.checkpoint_locked()
            finally:
                # Forgotten even when the checkpoint failed: the next owner starts from the
                # last one saved and replays what followed it.
                for partition in sorted(owned):
                    shard = self.shards.pop(partition)
                    self.offsets.pop(partition, None)
                    self.dirty.discard(partition)
                    self.released(partition, shard)
            log.info("partitions released", extra={"topic": self.topic, "released": sorted(owned)})

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and apply until ``stop`` is set, then checkpoint what changed.

        Each partition's records are applied a turn at a time (:meth:`_apply_in_turns`);
        :meth:`after_batch` is called under :attr:`lock` once per poll, after them.
        """
        while not stop.is_set():
            if self.failure is not None:
                raise RuntimeError(f"{self.topic}: adopting partitions failed") from self.failure
            batch = await self.consumer.getmany(
                timeout_ms=self.poll_timeout_ms, max_records=self.batch_max_records
            )
            # As the poll returns, before any suspension: aiokafka fetches a newly assigned
            # partition from the group's offset before the listener adopts it, and the poll
            # may return those records while the adoption holds the lock.
            read_at = {tp.partition: self.adoptions.get(tp.partition, 0) for tp in batch}
            async with self.lock:
                # The shards the batch was read for, taken once for all its partitions: one
                # revoked while it was read has none (its next owner reads the records from its
                # checkpoint), and one adopted since, at once or between another's turns, has
                # its records read again from the offset it was sought to (see
                # _apply_in_turns).
                owners = {partition: self.shards.get(partition) for partition in read_at}
            for tp, records in batch.items():
                shard = owners[tp.partition]
                if shard is not None and records:
                    await self._apply_in_turns(tp.partition, shard, read_at[tp.partition], records)
            async with self.lock:
                await self.after_batch()
            # getmany() returns without suspending while records are buffered: without this
            # the API sharing the loop would wait for a whole backlog to drain.
            await asyncio.sleep(0)
        await self.checkpoint()

    async def _apply_in_turns(
        self, partition: int, shard: Shard, adoption: int, records: list[Any]
    ) -> None:
        """Apply ``records`` to ``shard`` ``records_per_turn`` at a time, handing the event
        loop and :attr:`lock` back after each turn; drop the rest once the partition is no
        longer ``shard``'s or was adopted since the poll (``adoption``: its
        :attr:`adoptions` as the poll returned).

        Between two turns a rebalance may revoke the partition (its shard is checkpointed at
        the offset after the last turn applied, then forgotten), or revoke and adopt it again
        (a new shard loaded from that checkpoint, the consumer sought back to its offset).
        Either way the partition's owner reads the rest again from the checkpoint: applied
        here too, they would be counted twice, or into a shard nobody saves.
        """
        for start in range(0, len(records), self.records_per_turn):
            turn = records[start : start + self.records_per_turn]
            async with self.lock:
                if (
                    self.shards.get(partition) is not shard
                    or self.adoptions.get(partition, 0) != adoption
                ):
                    return
                await self.handle(partition, shard, turn)
                # With the records and under the lock: a checkpoint between two turns (a
                # release's, an operator's) saves exactly the records applied.
                self.offsets[partition] = turn[-1].offset + 1
                self.dirty.add(partition)
            await asyncio.sleep(0)  # the API's, the heartbeats' and the lock's waiters' turn

    # -- checkpoints -----------------------------------------------------------------------

    async def checkpoint(self) -> None:
        async with self.lock:
            await self.checkpoint_locked()

    async def checkpoint_locked(self) -> None:
        """Checkpoint every changed partition (its shard and offset), then commit the
        offsets those checkpoints cover."""
        commit = {}
        for partition in sorted(self.dirty & self.shards.keys()):
            tp = TopicPartition(self.topic, partition)
            offset = self.offsets.get(partition)
            offsets = {} if offset is None else {partition_key(tp): offset}
            if not await self.save_shard(partition, self.shards[partition], offsets):
                log.warning(
                    "a checkpoint further along partition %d exists: another instance owns it",
                    partition,
                )
            elif offset is not None:
                commit[tp] = OffsetAndMetadata(offset, "")
        if commit:
            try:
                await self.consumer.commit(commit)
            except KafkaError as exc:
                # The checkpoint holds the offsets: the next owner seeks there anyway.
                log.warning("offsets not committed", extra={"error": repr(exc)})
        self.dirty.clear()
        self._last_checkpoint = time.monotonic()
