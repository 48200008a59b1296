"""The announcements' outbox: the analysis intake's part that publishes on
``finops.experiments.v1`` the operators' starts and stops and the decisions recorded, from
their audit rows (:meth:`.ExperimentRepository.unannounced`), as soon as the API asks and at
every refresh, so that one the broker (or PostgreSQL) did not take is announced when it is
back, by this instance or another (:class:`Announcements`, a mixin of
:class:`~.analysis_intake.AnalysisIntake`)."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import Counter

from finops.common.datastores import is_dependency_failure
from finops.common.metrics import counter_by
from finops.experiments.adapters.intake_base import IntakeBase
from finops.experiments.adapters.repository import ANNOUNCEMENT_KINDS

log = logging.getLogger(__name__)

ANNOUNCED = counter_by(
    "finops_experiments_announcements_total",
    "Announcements this instance wrote to finops.experiments.v1, by kind",
    "kind",
    ANNOUNCEMENT_KINDS,
)
ANNOUNCE_FAILURES = Counter(
    "finops_experiments_announce_failures_total",
    "Attempts to announce operators' starts and stops that failed on the broker or PostgreSQL "
    "(retried at the next refresh)",
)


class Announcements(IntakeBase):
    """The outbox of the operators' changes and the analysis's decisions."""

    def announce_soon(self) -> None:
        """An operator started or stopped an experiment: announce it after this batch."""
        self._announce_now.set()

    async def publish_announcements(self) -> int:
        """Announce the operators' starts and stops, and the decisions recorded, not announced
        yet; how many were.  A broker or PostgreSQL failure leaves them for the next try (at
        the next refresh)."""
        self._announce_now.clear()
        try:
            async with self.repo.unannounced() as pending:
                for announcement in pending:
                    await self.announce(announcement.body())
        except Exception as exc:
            if not (isinstance(exc, KafkaError) or is_dependency_failure(exc)):
                raise
            ANNOUNCE_FAILURES.inc()
            log.warning("announcements not published, retried later", extra={"error": repr(exc)})
            return 0
        return len(pending)

    async def announce(self, body: dict[str, Any]) -> None:
        await self.producer.send_and_wait(
            self.experiments_topic,
            json.dumps(body, default=str).encode(),
            key=str(body["experiment_id"]).encode(),
        )
        ANNOUNCED.labels(body["kind"]).inc()
