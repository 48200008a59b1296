"""Every advice goes to ``finops.healing.v1``; an abort also raises an alert on
``finops.alerts.v1`` (the platform's one alert shape, ``source: "healer"``).

``publish`` hands the record to the producer's buffer (it waits only when that buffer is
full: back-pressure, never a silent drop); delivery completes in the background. A delivery
the broker failed with an error sending again may fix (its timeout, while it is frozen) is
sent again in the background (:func:`~finops.common.broker_outage.publish_acknowledged`: with
backoff, for at most the outage tolerance); a record it still could not deliver is logged and
counted as failed. At shutdown (:meth:`HealingLog.close`) no new resend starts, the running
ones get a short bound to finish and the rest are cancelled and counted as failed, before the
producer stops. A record sent again may be written twice (its first acknowledgement lost):
an advice record carries its ``advice_id``, an abort alert its ``alert_id``, to deduplicate by.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from finops.common.alerts import Alert
from finops.common.broker_outage import (
    BrokerOutage,
    BrokerOutageTooLong,
    BrokerRefused,
    Outgoing,
    publish_acknowledged,
    refused,
)
from finops.common.topics import ALERTS, HEALING
from finops.healer.domain.advice import Advice
from finops.healer.domain.remedies import Action

log = logging.getLogger(__name__)
ADVICE = Counter(
    "finops_healer_advice_total",
    "Advice given by POST /api/healing/advice, by the error kind and the remedy's action",
    ["kind", "action"],
)
PUBLISHED = Counter(
    "finops_healer_published_total",
    "Advice records and abort alerts written, by topic and outcome (sent, possibly after"
    " sending again; failed: refused, not taken within the broker outage tolerance, or cut off"
    " at shutdown)",
    ["topic", "outcome"],
)


def healing_record(advice: Advice, task_type: str) -> dict[str, Any]:
    """The ``finops.healing.v1`` record of one advice: the answer plus what it was about."""
    return {
        **advice.to_answer(),
        "agent_id": advice.agent_id,
        "task_type": task_type,
        "provider": advice.call.provider,
        "model": advice.call.model,
        "attempt": advice.call.attempt,
        "rule": advice.rule,
        "stated_wait_ms": advice.stated_wait_ms,
        "follows": advice.follows,
        "candidates": [action.value for action in advice.candidates],
        "time": datetime.now(UTC).isoformat(),
    }


def abort_alert(advice: Advice) -> Alert:
    subject = f"{advice.call.provider}/{advice.call.model}"
    return Alert(
        kind="healing_abort",
        alert_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"healing-abort:{advice.advice_id}")),
        subject=subject,
        severity="warning",
        message=f"{advice.kind.value} on {subject}: {advice.remedy.reason}",
        source="healer",
        details={
            "advice_id": advice.advice_id,
            "agent_id": advice.agent_id,
            "kind": advice.kind.value,
            "rule": advice.rule,
        },
    )


class HealingLog:
    def __init__(self, producer: AIOKafkaProducer, outage: BrokerOutage | None = None) -> None:
        self.producer = producer
        #: the instance's wait for a broker that does not take records (None: no resend)
        self.outage = outage
        #: deliveries being sent again in the background
        self.resending: set[asyncio.Task[None]] = set()
        #: shutting down: a failed delivery is counted as failed, not sent again
        self.closing = False

    async def close(self, timeout: float) -> None:
        """Start no more resends; wait at most ``timeout`` s for those running, cancel the
        rest (each counted as failed). Call it before the producer stops: its flush fails
        what it still holds, and a resend through a closed producer could not succeed."""
        self.closing = True
        running = set(self.resending)
        if not running:
            return
        _done, pending = await asyncio.wait(running, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def publish(self, advice: Advice, task_type: str) -> None:
        ADVICE.labels(advice.kind.value, advice.remedy.action.value).inc()
        record = healing_record(advice, task_type)
        await self._send(HEALING.name, record, advice.agent_id)
        if advice.remedy.action is Action.ABORT:
            alert = abort_alert(advice)
            await self._send(ALERTS.name, alert.to_dict(), alert.subject)

    async def _send(self, topic: str, record: dict[str, Any], key: str) -> None:
        outgoing = Outgoing(topic, json.dumps(record, separators=(",", ":")).encode(), key.encode())
        delivery = await self.producer.send(outgoing.topic, outgoing.value, key=outgoing.key)
        delivery.add_done_callback(lambda done: self._delivered(outgoing, done))

    def _delivered(self, outgoing: Outgoing, delivery: asyncio.Future[Any]) -> None:
        error = None if delivery.cancelled() else delivery.exception()
        if (
            error is None
            or self.outage is None
            or self.closing
            or delivery.cancelled()
            or refused(error)
        ):
            _count(outgoing.topic, delivery)
            return
        resend = asyncio.get_running_loop().create_task(self._resend(outgoing, error))
        self.resending.add(resend)
        resend.add_done_callback(self.resending.discard)

    async def _resend(self, outgoing: Outgoing, error: BaseException) -> None:
        assert self.outage is not None
        log.warning(
            "an advice record was not delivered; sending it again",
            extra={"topic": outgoing.topic, "error": repr(error)},
        )
        try:
            await publish_acknowledged(
                self.producer, [outgoing], self.outage, what="advice records"
            )
        except (BrokerOutageTooLong, BrokerRefused) as exc:
            PUBLISHED.labels(outgoing.topic, "failed").inc()
            log.error(
                "an advice record was not delivered",
                extra={"topic": outgoing.topic, "error": str(exc)},
            )
        except asyncio.CancelledError:  # the service stops before the broker took it
            PUBLISHED.labels(outgoing.topic, "failed").inc()
            log.error(
                "an advice record was not delivered",
                extra={"topic": outgoing.topic, "error": "the service stopped while resending"},
            )
            raise
        except Exception as exc:  # a failure no retry covers: counted, never left unretrieved
            PUBLISHED.labels(outgoing.topic, "failed").inc()
            log.exception(
                "an advice record was not delivered",
                extra={"topic": outgoing.topic, "error": repr(exc)},
            )
        else:
            PUBLISHED.labels(outgoing.topic, "sent").inc()


def _count(topic: str, delivery: asyncio.Future[Any]) -> None:
    if delivery.cancelled() or delivery.exception() is not None:
        PUBLISHED.labels(topic, "failed").inc()
        log.error(
            "an advice record was not delivered",
            extra={
                "topic": topic,
                "error": repr(None if delivery.cancelled() else delivery.exception()),
            },
        )
    else:
        PUBLISHED.labels(topic, "sent").inc()
