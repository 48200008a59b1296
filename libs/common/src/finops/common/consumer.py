"""At-least-once consumption with a dead-letter topic: the one Kafka consumer outside Faust.

:class:`AtLeastOnceConsumer` polls, hands each record to a handler, retries a handler that
fails and then writes the record to ``<topic>.dlq`` (:func:`dead_letter`), so a poison record
never blocks its partition and no record is ever skipped silently. Handlers must be
idempotent on the event id, since a crash between processing and commit replays the record.
A failure of a dependency (PostgreSQL, Redis, Kafka) is not the record's fault: once the
attempts are spent it is raised, never dead-lettered, and the offset is not moved past it.

Where offsets go is an option:

* plain: a partition's offsets are committed to the group after each batch (after
  ``flush``, which waits for what the handler produced);
* checkpointed (``checkpointed=``, a :class:`CheckpointedState`): the consumer advances the
  state's offsets record by record under its lock, and the state saves itself with them in
  PostgreSQL (see :mod:`finops.common.checkpoints`); on (re)assignment each partition is
  sought to its saved offset, or to the beginning when the state has none of its events, and
  what is left of a poll read before its partition was revoked or sought is dropped (read
  again from the offset sought to, it is applied once).

Either way the loop hands the event loop back between batches, and every ``records_per_turn``
records within one: aiokafka's ``getmany()`` returns without suspending while records are
buffered, and the service's HTTP API shares the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from finops.common.checkpoints import CheckpointSource
from finops.common.datastores import is_dependency_failure
from finops.common.dead_letters import Record, dead_letter
from finops.common.kafka import start_subscribed, topic_partitions
from finops.common.log_position import ResumePlan, partition_key
from finops.common.metrics import STREAM_EVENTS, export_stream_counts

log = logging.getLogger(__name__)
Handler = Callable[[Record], Awaitable[None]]
Batch = dict[TopicPartition, list[Record]]


class CheckpointedState:
    """Base of a consumer's state that is saved together with the offsets it covers.

    The consumer advances :attr:`offsets` under :attr:`lock` as it applies records, so a
    checkpoint taken under the lock always describes one moment: the state and the offsets
    of exactly the records in it. Subclasses save in :meth:`checkpoint` and may do work after
    each poll in :meth:`after_batch` (a periodic checkpoint, say).
    """

    def __init__(self, store: CheckpointSource, name: str) -> None:
        #: a subclass saves through a store of its own kind (restoring needs only ``load``)
        self.store = store
        self.name = name  # of the checkpoint
        self.offsets: dict[str, int] = {}  # "topic:partition" -> next offset to read
        self.cluster_id: str | None = None  # the broker cluster ``offsets`` belong to
        self.events = 0  # applied to the state, as the checkpoint counts them
        self.lock = asyncio.Lock()
        #: "topic:partition" -> how many times it was revoked or sought (changed under
        #: :attr:`lock`): records polled before a change are read again from where the
        #: partition was sought, so the rest of that poll's are dropped
        self.moved: dict[str, int] = {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the live state by a checkpoint's; KeyError, ValueError or TypeError for
        one this version cannot read."""
        raise NotImplementedError

    async def restore(self) -> bool:
        """Load the last checkpoint; False when there is none or it cannot be read.

        A checkpoint from another version of the state is not fatal: the log is the source
        of truth, so the state is rebuilt by replaying the topics from their earliest offsets.
        """
        saved = await self.store.load(self.name)
        if saved is None:
            return False
        try:
            self.load_state(saved.state_dict())
        except (KeyError, ValueError, TypeError) as exc:
            log.error(
                "checkpoint %r unreadable; rebuilding the state from the earliest offsets",
                self.name,
                extra={"error": repr(exc)},
            )
            return False
        self.offsets = dict(saved.offsets)
        self.cluster_id = saved.cluster_id
        self.events = saved.events
        log.info(
            "restored checkpoint %r",
            self.name,
            extra={"events": saved.events, "offsets": saved.offsets},
        )
        return True

    def resume_from(self, plan: ResumePlan) -> None:
        """Keep only the offsets the broker's log still holds (the state stays as restored)."""
        self.offsets = dict(plan.offsets)
        self.cluster_id = plan.cluster_id

    async def after_batch(self) -> None:
        """Called with :attr:`lock` held after every poll, with or without records."""

    async def checkpoint(self) -> None:
        """Save the state with its offsets (takes :attr:`lock`)."""
        raise NotImplementedError

    async def commit_offsets(self, consumer: AIOKafkaConsumer) -> None:
        """Commit to the group the saved offsets of the partitions ``consumer`` is assigned."""
        commit = {
            tp: OffsetAndMetadata(self.offsets[partition_key(tp)], "")
            for tp in consumer.assignment()
            if partition_key(tp) in self.offsets
        }
        if commit:
            await consumer.commit(commit)

    def moved_now(self, partitions: Iterable[TopicPartition]) -> None:
        """Note that ``partitions`` were revoked or sought (call with :attr:`lock` held)."""
        for tp in partitions:
            key = partition_key(tp)
            self.moved[key] = self.moved.get(key, 0) + 1

    async def seek(self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
        """Seek each partition to its saved offset; one the state has none of, to the start.

        Call with :attr:`lock` held, or before the consumer polls: the offsets must not move
        while the consumer is sought to them."""
        partitions = list(partitions)
        self.moved_now(partitions)
        fresh = []
        for tp in partitions:
            offset = self.offsets.get(partition_key(tp))
            if offset is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, offset)
        if fresh:
            await consumer.seek_to_beginning(*fresh)


class _SeekToCheckpoint(ConsumerRebalanceListener):  # type: ignore[misc]
    """Checkpoint what is revoked; seek what is assigned to the state's offsets.

    Either may run between two turns of a poll (see
    :meth:`AtLeastOnceConsumer._advance_checkpointed`): both note the partitions as moved,
    under the state's lock, so the poll's remaining records of those partitions are dropped.
    A revoked partition's are no longer this consumer's to apply; an assigned one's are read
    again from the offset it is sought to (the offset after the last record applied), and
    applied then, once. aiokafka rebalances eagerly: every partition of the previous
    assignment is revoked and every partition of the new one passed here as assigned.
    """

    def __init__(self, consumer: AIOKafkaConsumer, state: CheckpointedState) -> None:
        self.consumer = consumer
        self.state = state

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            async with self.state.lock:
                self.state.moved_now(revoked)  # before the checkpoint: nothing applied after it
            await self.state.checkpoint()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.state.lock:  # no turn half-applied while sought to the offsets
            await self.state.seek(self.consumer, assigned)


class AtLeastOnceConsumer:
    """Consume in batches; retry a failing handler, then dead-letter; commit or checkpoint.

    ``producer`` writes the dead letters; without one, a record the handler gives up on
    stops the consumer (for handlers that count and skip what they cannot read).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer | None,
        handler: Handler,
        *,
        service: str,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.1,
        batch_max_records: int = 2000,
        poll_timeout_ms: int = 200,
        records_per_turn: int | None = None,
        checkpointed: CheckpointedState | None = None,
        flush: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.handler = handler
        self.service = service
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.batch_max_records = batch_max_records
        self.poll_timeout_ms = poll_timeout_ms
        #: records handled between two turns of the event loop (None: a whole batch)
        self.records_per_turn = records_per_turn
        self.checkpointed = checkpointed
        #: awaited before offsets are committed: once a batch (plain), after each turn's
        #: records (checkpointed: their offsets advance under the lock a turn at a time)
        self.flush = flush
        self.processed = 0
        self.dead_lettered = 0

    def _export_counts(self, topics: Iterable[str]) -> None:
        """Export this reader's counts at 0 (``dead_lettered`` only with a producer to park
        records with: without one, a record given up on stops the consumer)."""
        outcomes = ("processed", "dead_lettered") if self.producer else ("processed",)
        export_stream_counts(self.service, topics, outcomes)

    async def start_subscribed(
        self, topics: Sequence[str], listener: ConsumerRebalanceListener | None = None
    ) -> None:
        """Start, then join the group on ``topics`` in the background (see
        :func:`finops.common.kafka.start_subscribed`); checkpointed, every assignment seeks to
        the state's offsets (the state is the listener)."""
        if self.checkpointed is not None:
            if listener is not None:
                raise ValueError("a checkpointed consumer listens to its assignments itself")
            listener = _SeekToCheckpoint(self.consumer, self.checkpointed)
        self._export_counts(topics)
        await start_subscribed(self.consumer, topics, listener)

    async def start_assigned_topics(self, topics: Sequence[str]) -> None:
        """Start and read, without a group, every partition the broker has of ``topics`` as
        the consumer starts, from the state's offsets (checkpointed only: without a group,
        nowhere else keeps them). A topic an operator gave more partitions than the platform
        declares is read whole, not its declared ones alone (a group reader is assigned the
        new ones; this one would never read them, and nothing would say so). A partition
        added later is read from the next start."""
        if self.checkpointed is None:
            raise ValueError("assigning without a group needs a checkpointed state")
        self._export_counts(sorted(topics))
        await self.consumer.start()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(await self._partitions_of(topic))
        ]
        self.consumer.assign(partitions)
        await self.checkpointed.seek(self.consumer, partitions)

    async def _partitions_of(self, topic: str) -> set[int]:
        """``topic``'s partitions in the broker's metadata (:func:`~finops.common.kafka.
        topic_partitions`); KafkaError when it holds none."""
        found = await topic_partitions(self.consumer, topic)
        if not found:
            raise KafkaError(f"the broker's metadata holds no partition of topic {topic}")
        return set(found)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set (or forever); checkpointed, save once more at the end."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            batch = await self.consumer.getmany(
                timeout_ms=self.poll_timeout_ms, max_records=self.batch_max_records
            )
            await self.process_batch(batch)
            await asyncio.sleep(0)  # the API's turn, even when getmany() did not suspend
        if self.checkpointed is not None:
            await self.checkpointed.checkpoint()

    async def process_batch(self, batch: Batch) -> None:
        """Handle a poll's records. Call it as the poll returns, with no suspension in
        between: checkpointed, what a rebalance moved since the poll is measured from here
        (see :meth:`_advance_checkpointed`)."""
        if self.checkpointed is None:
            await self._commit_each_partition(batch)
        else:
            await self._advance_checkpointed(batch, self.checkpointed)

    def _turns(self, records: list[Any]) -> list[list[Any]]:
        size = self.records_per_turn or max(len(records), 1)
        return [records[start : start + size] for start in range(0, len(records), size)]

    async def _commit_each_partition(self, batch: Batch) -> None:
        """Handle the batch a turn at a time, wait once for what it produced (``flush``:
        waiting after each turn would cap a forwarding stage at a turn per broker round
        trip), then commit each partition."""
        for records in batch.values():
            for turn in self._turns(records):
                for record in turn:
                    await self._process(record)
                if self.records_per_turn:
                    await asyncio.sleep(0)
        if self.flush is not None and batch:
            await self.flush()
        for tp, records in batch.items():
            if records:
                await self._commit(tp, records[-1].offset + 1)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self.consumer.commit({tp: offset})
        except KafkaError as exc:
            # The group rebalanced under the batch: the partition's next owner reads these
            # records again (at least once), so the loop goes on rather than dying.
            log.warning("offsets not committed", extra={"tp": str(tp), "error": repr(exc)})

    async def _advance_checkpointed(self, batch: Batch, state: CheckpointedState) -> None:
        """Each turn's records and their offsets change together under the state's lock.

        Called as the poll returns (no suspension in between): a partition revoked or sought
        since (a rebalance between two turns, or while the first waits for the lock) has the
        rest of its records dropped, since they are read again from where it was sought
        (:class:`_SeekToCheckpoint`); applied here too they would be applied twice. Other
        partitions' records are applied: their fetch positions are already past them.
        """
        records = [(partition_key(tp), r) for tp, rs in batch.items() for r in rs]
        read_at = {key: state.moved.get(key, 0) for key, _ in records}

        def unmoved(turn: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
            return [(key, r) for key, r in turn if state.moved.get(key, 0) == read_at[key]]

        turns = self._turns(records)
        for turn in turns[:-1]:
            async with state.lock:
                await self._apply(unmoved(turn), state)
            await asyncio.sleep(0)
        async with state.lock:
            if turns:
                await self._apply(unmoved(turns[-1]), state)
            await state.after_batch()

    async def _apply(self, turn: list[tuple[str, Any]], state: CheckpointedState) -> None:
        if not turn:
            return
        for key, record in turn:
            await self._process(record)
            state.offsets[key] = record.offset + 1
        if self.flush is not None:
            await self.flush()

    async def _process(self, record: Record) -> None:
        error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.handler(record)
                STREAM_EVENTS.labels(self.service, record.topic, "processed").inc()
                self.processed += 1
                return
            except Exception as exc:  # event handlers log and continue
                error = exc
                log.warning(
                    "handler failed",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "attempt": attempt,
                        "error": repr(exc),
                    },
                )
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
        assert error is not None
        if is_dependency_failure(error) or isinstance(error, KafkaError):
            raise error  # not the record's fault: never parked, its offset never passed
        if self.producer is None:  # a consumer whose handler never gives a record up
            raise RuntimeError(f"no producer to dead-letter {record.topic} record") from error
        await dead_letter(
            self.producer, record, error, attempts=self.max_attempts, service=self.service
        )
        self.dead_lettered += 1
