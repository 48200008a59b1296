"""The state every part of the analysis intake (:class:`~.analysis_intake.AnalysisIntake`)
shares: the partitions' analyses (:class:`~finops.common.owned_partitions.OwnedPartitions`),
the stores it reads and writes, and what it keeps between batches. The parts are mixins of
this base, each in a module named by its role: :mod:`.operator_follow` (the operators' starts
and stops, the experiments met on an event), :mod:`.replay_ends` (a replay that the log's
retention left short of a recorded decision's counts), :mod:`.conclusion_records` (the
conclusions recorded in PostgreSQL before any checkpoint) and :mod:`.announcements` (the
outbox published on ``finops.experiments.v1``)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from finops.common.metrics import export_stream_counts
from finops.common.owned_partitions import OwnedPartitions, Resume
from finops.common.partitions import partition_for
from finops.experiments.adapters.checkpoints import PostgresCheckpointStore
from finops.experiments.adapters.forward import TaggedForwarder
from finops.experiments.adapters.repository import Experiment, ExperimentRepository
from finops.experiments.domain.analysis import ExperimentAnalysis


class IntakeBase(OwnedPartitions[ExperimentAnalysis]):
    """What the parts of the analysis intake share (the loop, the rebalances and the
    checkpoint bookkeeping are :class:`OwnedPartitions`')."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: PostgresCheckpointStore,
        repo: ExperimentRepository,
        *,
        name: str,
        events_topic: str,
        experiments_topic: str,
        partitions: int,
        resume: Resume,
        forwarder: TaggedForwarder | None = None,
        checkpoint_interval_s: float = 5.0,
        refresh_interval_s: float = 1.0,
    ) -> None:
        super().__init__(
            consumer, events_topic, resume=resume, checkpoint_interval_s=checkpoint_interval_s
        )
        self.producer = producer
        # what this intake parks (it counts no processed records there)
        export_stream_counts("experiments", [events_topic], ["dead_lettered"])
        self.store = store
        self.repo = repo
        self.name = name
        self.experiments_topic = experiments_topic
        self.partitions = partitions
        self.forwarder = forwarder
        self.refresh_interval_s = refresh_interval_s
        #: tagged events analysed by this instance since it started
        self.events = 0
        #: conclusions not recorded yet, by partition: recorded in PostgreSQL before any
        #: checkpoint (see :meth:`checkpoint_locked`)
        self.unrecorded: dict[int, list[dict[str, Any]]] = {}
        self._last_refresh = 0.0
        #: partitions were adopted: follow the operators before counting their calls
        self._follow_first = False
        #: follow the operators after this batch, before any checkpoint, whatever the interval
        self._refresh_soon = False
        self._not_running: dict[str, float] = {}
        #: the end of its partition's log noted once an experiment began to follow a recorded
        #: decision's counts: read up to there, the replay holds every call it can still count
        self._replay_ends: dict[str, int] = {}
        #: the next offset of each partition short of a replay's end at the last batch: its
        #: log's start is asked only once it has not moved since (see _read_up_to)
        self._short_at: dict[int, int] = {}
        #: every experiment as of the last refresh (at most ``refresh_interval_s`` old), for
        #: the assignment API; a status other than running is always re-read from PostgreSQL
        self.known: dict[str, Experiment] = {}
        self._announce_now = asyncio.Event()

    def checkpoint_name(self, partition: int) -> str:
        return f"{self.name}:{partition}"

    def owner_partition(self, experiment_id: str) -> int:
        return partition_for(experiment_id, self.partitions)

    def _concluded(self, partition: int, conclusions: list[dict[str, Any]]) -> None:
        if conclusions:
            self.unrecorded.setdefault(partition, []).extend(conclusions)
