"""The healer's circuit breakers on Kafka: outcomes in, breaker states and alerts out.

Two stages (see docs/breakers.md):

1. Every instance reads its partitions of ``agent.error.v1`` and ``agent.cost.v1`` (keyed by
   agent), classifies each error, and forwards one :class:`ProviderOutcome` per call that
   says something about a provider's health to ``finops.provider-outcomes.v1``, keyed by
   provider/model: every outcome of one breaker lands in one partition, owned by one instance.
2. The owner updates the breaker (:class:`~finops.healer.domain.breaker_board.BreakerBoard`) and
   publishes its state to the compacted ``finops.circuits.v1``, and an alert to
   ``finops.alerts.v1`` when it opens or closes. Each owned partition's breakers are
   checkpointed with its offset (:mod:`.breaker_shards`): a new owner goes on from there.

Every instance reads the whole circuits topic into a :class:`CircuitsView`, which answers for
every breaker (``GET /api/healing/circuits``, and ``state_of`` for the advice).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from prometheus_client import Gauge

from finops.common.alerts import Alert
from finops.common.circuits import (
    CircuitReader,
    CircuitState,
    CircuitStatus,
    CircuitTable,
    circuit_key,
)
from finops.common.lifespan import finish
from finops.common.metrics import counter_by
from finops.healer.domain.breaker_trips import HeldBack, TripRule
from finops.healer.domain.breakers import Transition

log = logging.getLogger(__name__)

#: every rule at 0 from the start, so that the first trip held back shows in ``increase()``
HELD_BACK = counter_by(
    "finops_healer_breaker_trips_held_back_total",
    "Outcomes that would have opened (or re-opened) a breaker this instance owns, but for"
    " which the case does not hold without the faults of the FINOPS_BREAKER_QUORUM - 1"
    " agents that reported the most, by the rule that would have opened it",
    "rule",
    [rule.value for rule in TripRule],
)


#: The last second of year 9999 (seconds since 1970, UTC): the latest an event's ``time`` (a
#: datetime) can say, so the latest time a forwarded outcome can carry.
LATEST_AT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def outcome_time(value: float | str) -> float:
    """An outcome's ``at`` (seconds since 1970): refused (ValueError, so the record is
    parked) unless between 1970 and the end of year 9999.

    JSON parses ``Infinity`` and ``NaN``, on which the breaker's window raises
    (OverflowError, ValueError) where nothing parks the record, and a time beyond any
    datetime's would move the window past every real outcome. Every outcome the forwarder
    writes comes from an event's datetime, and no call was made before 1970: a replay of
    old outcomes, however old, is never refused.

    Examples
    --------
    >>> outcome_time(1_765_000_000), outcome_time("0")
    (1765000000.0, 0.0)
    >>> outcome_time(float("inf"))
    Traceback (most recent call last):
    ...
    ValueError: an outcome's time is seconds since 1970 up to year 9999, not inf
    """
    at = float(value)
    if not 0.0 <= at <= LATEST_AT:  # NaN too: it compares false
        raise ValueError(f"an outcome's time is seconds since 1970 up to year 9999, not {at!r}")
    return at


@dataclass(frozen=True)
class ProviderOutcome:
    """One call's verdict on a provider/model: a success, or a provider fault of ``kind``,
    reported by ``agent`` (:func:`reporting_agent`; None in an outcome the version before the
    breakers' quorum forwarded: an unknown agent)."""

    event_id: str
    provider: str
    model: str
    failed: bool
    at: float
    kind: str | None = None
    agent: str | None = None

    @property
    def key(self) -> str:
        return circuit_key(self.provider, self.model)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ProviderOutcome:
        """The outcome :meth:`to_json` wrote; ValueError, KeyError or TypeError for a record
        that is not one (its ``at`` too: :func:`outcome_time`), which the owner parks."""
        data = json.loads(raw)
        return cls(
            event_id=str(data["event_id"]),
            provider=str(data["provider"]),
            model=str(data["model"]),
            failed=bool(data["failed"]),
            at=outcome_time(data["at"]),
            kind=data.get("kind"),
            agent=None if data.get("agent") is None else str(data["agent"]),
        )


def reporting_agent(agent_id: str, principal: str | None) -> str:
    """Who reported an event, for the breakers' quorum: the user id ingest stamped on it
    (``data.principal``, from the verified token), else its ``agent_id``.

    The principal comes first because ingest guarantees it: one account is one reporter,
    whichever of its API keys sent the event, even one with ``events:write:any``, which may
    name any ``agent_id`` and so could otherwise make up a quorum of agents on its own (agents
    sharing an account are therefore one reporter). An agent's own key may name only its
    account's agent, so there the two say the same. An event without a principal did not come
    through ingest (a producer with access to the broker wrote it): its ``agent_id`` is all
    there is.

    Examples
    --------
    >>> reporting_agent("bot1", "0b5e-uuid"), reporting_agent("bot1", None)
    ('0b5e-uuid', 'bot1')
    """
    return principal or agent_id


def breaker_alert(transition: Transition) -> Alert | None:
    """The alert of a breaker that opened or closed (none for half-opening)."""
    state = transition.state
    if transition.after is CircuitStatus.HALF_OPEN:
        return None
    opened = transition.after is CircuitStatus.OPEN
    subject = f"{state.provider}/{state.model}"
    at = state.opened_at if opened else state.updated_at
    return Alert(
        kind="breaker_open" if opened else "breaker_closed",
        alert_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"breaker:{subject}:{transition.after}:{at}")),
        subject=subject,
        severity="critical" if opened else "info",
        message=(
            f"circuit breaker of {subject} opened: {state.reason}; calls stop until a probe at "
            f"{state.to_dict()['next_probe_at']}"
            if opened
            else f"circuit breaker of {subject} closed: {state.reason}"
        ),
        source="healer",
        details=state.to_dict(),
    )


def report_held_back(held: HeldBack) -> None:
    """Count a trip held back because it does not hold without the top faulters' faults; log
    the first of a run of them (one agent's faults may hold a breaker's trips back for every
    outcome it sends)."""
    HELD_BACK.labels(held.rule.value).inc()
    if held.first:
        split = held.split
        log.warning(
            "circuit breaker not opened: without the faults of the agents that reported the"
            " most, the case does not hold",
            extra={
                "provider": held.provider,
                "model": held.model,
                "rule": held.rule.value,
                "left_out_agents": split.left_out,
                "left_out_faults": split.left_out_faults,
                "faults": split.total.failures,
                "calling_agents": split.callers,
                "quorum": held.quorum,
                "detail": held.message,
            },
        )


BREAKERS = Gauge(
    "finops_healer_breakers",
    "Breakers (provider/model) by their latest published state, as this instance reads them",
    ["state"],
)


class CircuitsView:
    """Every breaker's latest published state, read from the compacted topic.

    ``state_of(provider, model)`` is the port the remedy advice reads (``"closed"``,
    ``"open"``, ``"half_open"``, or None for a breaker never published). The gauge
    ``finops_healer_breakers{state}`` counts the breakers in each state when scraped.
    """

    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self.table = CircuitTable()
        self.reader = CircuitReader(consumer, topic, self.table)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        for status in CircuitStatus:
            BREAKERS.labels(status.value).set_function(
                lambda status=status: self.count(status)  # type: ignore[misc]
            )

    def count(self, status: CircuitStatus) -> int:
        return sum(1 for state in self.table.all() if state.state is status)

    def state_of(self, provider: str, model: str) -> str | None:
        return self.table.state_of(provider, model)

    def get(self, provider: str, model: str) -> CircuitState | None:
        return self.table.get(provider, model)

    def all(self) -> list[CircuitState]:
        return self.table.all()

    async def read_to_now(self, timeout_s: float) -> bool:
        """Wait until this view holds every state published before the call (False when
        ``timeout_s`` passed first)."""
        return await self.reader.read_to_now(timeout_s)

    async def start(self) -> None:
        await self.reader.start()
        self._task = asyncio.create_task(self.reader.run(self._stop), name="healer-circuits")

    @property
    def task(self) -> asyncio.Task[None]:
        """The reading loop (started by :meth:`start`)."""
        if self._task is None:
            raise RuntimeError("the circuit-breaker reader has not started")
        return self._task

    @property
    def stopping(self) -> asyncio.Event:
        """Set once :meth:`stop` is called."""
        return self._stop

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop the reading loop (its failure, if it died, is logged, not raised: the
        consumer is stopped either way) and then the consumer."""
        self._stop.set()
        if self._task is not None:
            await finish(self._task, timeout=10)
        await self.reader.stop()
