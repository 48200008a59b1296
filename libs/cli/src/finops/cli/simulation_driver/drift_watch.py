"""Reads the run's drift alerts back from ``finops.alerts.v1``: whether the platform noticed
the injected drifts (the matching: :mod:`finops.cli.simulation.drift_findings`).

The topic is read whole at the run's start to mark where it ended (:class:`TopicMark`), and
again at the end, keeping only the records past the mark: a second run on the same data folder
does not count the first one's alerts. The broker's end offsets at the start would do the same
with one request, but the local tansu broker's ListOffsets is no end at all
(:func:`finops.common.kafka.read_topic`), and the alert's details hold no time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from finops.cli.simulation.drift_findings import (
    DriftAlertSeen,
    DriftFindings,
    RoundStart,
    TopicMark,
    TopicRecord,
    find_drifts,
)
from finops.cli.simulation.faults import QualityDrift


async def read_alerts(idle_s: float = 1.0, timeout_s: float | None = None) -> list[TopicRecord]:
    """Every record of ``finops.alerts.v1`` (raises the broker's errors). No deadline by
    default: a read that a deadline cut short would return part of the topic as the whole
    (a mark too early at the start counts an earlier run's alerts; a read too short at the
    end misses this run's), while a read that stops making progress raises
    :class:`~finops.common.kafka.TopicReadStalled`, and the findings are then unknown."""
    from finops.common.kafka import read_topic
    from finops.common.settings import CommonSettings
    from finops.common.topics import ALERTS

    settings = CommonSettings(service_name="cli")
    records = []
    async for record in read_topic(settings, ALERTS.name, idle_s=idle_s, timeout_s=timeout_s):
        stamp = record.timestamp if isinstance(record.timestamp, int) else None
        records.append(TopicRecord(record.partition, record.offset, record.value, stamp))
    return records


def _read_failures() -> tuple[type[BaseException], ...]:
    """What a read of the alerts topic may fail with: the broker gone (aiokafka's errors), a
    read that stalled, the network."""
    from aiokafka.errors import KafkaError

    from finops.common.kafka import TopicReadStalled

    return (KafkaError, TopicReadStalled, OSError, TimeoutError)


@dataclass
class DriftWatch:
    """The run's view of the drift alerts: the mark taken at its start, the start of each
    round of tasks (to place an alert in the run), the findings at its end."""

    injected: tuple[QualityDrift, ...]
    warn: Callable[[str], None]
    #: reads the whole topic (the broker's; a test's own)
    read: Callable[[], Awaitable[list[TopicRecord]]] = read_alerts
    mark: TopicMark | None = None
    rounds: list[RoundStart] = field(default_factory=list)

    async def start(self) -> None:
        """Mark where the alerts topic ends (warns and marks nothing when it cannot be read:
        the findings are then unknown)."""
        try:
            self.mark = TopicMark.after(await self.read())
        except _read_failures() as exc:
            self.warn(
                f"could not read finops.alerts.v1 at the start ({exc!r}): whether the "
                "injected drift was noticed will not be known"
            )

    def round_starts(self, done: float) -> None:
        """A round of tasks starts now, with ``done`` of the run's tasks done before it."""
        self.rounds.append(RoundStart(time.time() * 1000, done))

    async def findings(self, landed: Sequence[QualityDrift] | None = None) -> DriftFindings:
        """The run's drift alerts matched with the injected drifts (``landed``: as they
        landed, each on its model, :meth:`.DriftTargets.injected`; else :attr:`injected`);
        unknown (with a warning) when the topic could not be read."""
        injected = self.injected if landed is None else tuple(landed)
        if self.mark is None:
            return DriftFindings.unread(injected)
        try:
            records = await self.read()
        except _read_failures() as exc:
            self.warn(
                f"could not read finops.alerts.v1 at the end ({exc!r}): whether the "
                "injected drift was noticed is not known"
            )
            return DriftFindings.unread(injected)
        mark = self.mark
        alerts = [
            alert
            for alert in (DriftAlertSeen.from_record(r) for r in records if mark.holds(r))
            if alert is not None
        ]
        return find_drifts(injected, alerts, self.rounds)
