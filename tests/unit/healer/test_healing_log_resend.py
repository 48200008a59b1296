"""An advice record whose delivery the broker timed out (the local stack's producer, not
idempotent, under a frozen broker) is sent again until it is delivered; it was logged 'not
delivered' and lost. A refusal sending again cannot fix is not retried."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka.errors import (
    ProducerClosed,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from prometheus_client import REGISTRY

from finops.common.broker_outage import BrokerOutage
from finops.common.provider_errors.taxonomy import Classification, ErrorKind
from finops.healer.adapters.catalog import catalog_from_prices
from finops.healer.adapters.healing_log import HealingLog
from finops.healer.domain.advice import Advisor, NoBreakers
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.domain.remedies import FailedCall
from finops.healer.settings import HealerSettings


class TimingOutBroker:
    """Fails the first ``failures`` deliveries with ``error``, then writes each record."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.written: list[dict[str, Any]] = []
        self.sends = 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        self.sends += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failures:
            self.failures -= 1
            done.set_exception(self.error)
        else:
            self.written.append(json.loads(value))
            done.set_result(None)
        return done


def advice() -> Any:
    advisor = Advisor(
        catalog_from_prices(HealerSettings().fallback_models), NoBreakers(), HealingLedger().learner
    )
    return advisor.advise(
        "advice-1",
        "agent-a",
        Classification(ErrorKind.RATE_LIMIT, "test", None),
        FailedCall("openai", "gpt-4o"),
    )


async def settled(log: HealingLog) -> None:
    while log.resending:
        await asyncio.gather(*log.resending)
    await asyncio.sleep(0)  # the done-callbacks


async def test_a_delivery_the_broker_timed_out_is_sent_again_once() -> None:
    broker = TimingOutBroker(failures=2, error=RequestTimedOutError())
    log = HealingLog(broker, BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0))  # type: ignore[arg-type]
    await log.publish(advice(), "summarize")
    await asyncio.sleep(0)  # the delivery's callback starts the resend
    await settled(log)
    assert [record["advice_id"] for record in broker.written] == ["advice-1"]
    assert broker.sends == 3


async def test_a_refused_delivery_is_not_sent_again() -> None:
    broker = TimingOutBroker(failures=1, error=TopicAuthorizationFailedError("finops.healing.v1"))
    log = HealingLog(broker, BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0))  # type: ignore[arg-type]
    await log.publish(advice(), "summarize")
    await asyncio.sleep(0)
    await settled(log)
    assert (broker.written, broker.sends) == ([], 1)


def failed(topic: str = "finops.healing.v1") -> float:
    value = REGISTRY.get_sample_value(
        "finops_healer_published_total", {"topic": topic, "outcome": "failed"}
    )
    return value or 0.0


class ClosedAfterFirst(TimingOutBroker):
    """Times out the first delivery; every later send finds the producer closed."""

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        if self.sends:
            self.sends += 1
            raise ProducerClosed()
        return await super().send(topic, value, key)


async def test_a_resend_through_a_closed_producer_ends_at_once_counted_failed() -> None:
    # it was retried as transient until the outage tolerance ran out
    broker = ClosedAfterFirst(failures=1, error=RequestTimedOutError())
    log = HealingLog(broker, BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0))  # type: ignore[arg-type]
    before = failed()
    await log.publish(advice(), "summarize")
    await asyncio.sleep(0)
    await settled(log)
    assert (broker.written, broker.sends, failed() - before) == ([], 2, 1.0)


async def test_close_cancels_a_running_resend_and_counts_it_failed() -> None:
    # the broker never takes it: the resend would wait out the whole tolerance
    broker = TimingOutBroker(failures=10**6, error=RequestTimedOutError())
    log = HealingLog(broker, BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0))  # type: ignore[arg-type]
    before = failed()
    await log.publish(advice(), "summarize")
    await asyncio.sleep(0)
    resends = set(log.resending)
    assert len(resends) == 1
    await log.close(timeout=0.0)
    assert all(task.cancelled() for task in resends)
    await asyncio.sleep(0)  # the done-callbacks
    assert (log.resending, broker.written, failed() - before) == (set(), [], 1.0)


async def test_a_delivery_failing_after_close_is_counted_failed_not_sent_again() -> None:
    # producer.stop()'s flush fails what it holds: a resend then would use a closed producer
    broker = TimingOutBroker(failures=1, error=RequestTimedOutError())
    log = HealingLog(broker, BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0))  # type: ignore[arg-type]
    await log.close(timeout=1.0)
    before = failed()
    await log.publish(advice(), "summarize")
    await asyncio.sleep(0)
    assert (log.resending, broker.sends, failed() - before) == (set(), 1, 1.0)


class BrokenAfterFirst(TimingOutBroker):
    """Times out the first delivery; every later send fails with an error no retry covers."""

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        if self.sends:
            self.sends += 1
            raise ValueError("a serializer's bug")
        return await super().send(topic, value, key)


async def test_a_resend_failing_with_an_error_no_retry_covers_is_counted_failed() -> None:
    # the task failed with 'Task exception was never retrieved', counted neither way
    broker = BrokenAfterFirst(failures=1, error=RequestTimedOutError())
    log = HealingLog(broker, BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0))  # type: ignore[arg-type]
    before = failed()
    await log.publish(advice(), "summarize")
    await asyncio.sleep(0)
    resends = set(log.resending)
    await settled(log)
    assert all(task.exception() is None for task in resends)
    assert (broker.written, broker.sends, failed() - before) == ([], 2, 1.0)


class MovedPartitionBroker(TimingOutBroker):
    """Fails the first delivery with UnknownTopicOrPartitionError (its partition moved away
    from the broker it went to), its metadata answered since, holding the topic."""

    def __init__(self) -> None:
        super().__init__(failures=1, error=UnknownTopicOrPartitionError())
        cluster = type("Cluster", (), {})()
        cluster._last_successful_refresh_ms = float("inf")  # answered, after any send
        cluster.partitions_for_topic = lambda topic: {0}
        self.client = type("Client", (), {"cluster": cluster})()


async def test_a_delivery_to_a_moved_partition_is_sent_again() -> None:
    # an unknown topic counted as refused: the advice record was dropped, counted failed
    broker = MovedPartitionBroker()
    log = HealingLog(broker, BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0))  # type: ignore[arg-type]
    before = failed()
    await log.publish(advice(), "summarize")
    await asyncio.sleep(0)
    await settled(log)
    assert [record["advice_id"] for record in broker.written] == ["advice-1"]
    assert (broker.sends, failed() - before) == (2, 0.0)
