"""Publishing through a broker that stops answering: wait, send again only what it refused,
end past the tolerance or on an error retrying cannot fix (finops.common.broker_outage).

The fake broker plays both producers a service may have: an idempotent one (Apache Kafka's
default, compose and Kubernetes), whose sends aiokafka retries itself, so their
acknowledgements just do not come while the broker is frozen; and the local stack's
(idempotence off), whose sends fail with the broker's timeout.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka.errors import (
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from finops.common.broker_outage import (
    BrokerOutage,
    BrokerOutageTooLong,
    BrokerRefused,
    Outgoing,
    publish_acknowledged,
)


class FakeBroker:
    """A producer's ``send``: ``written`` is what the topic holds, in order."""

    def __init__(self, *, idempotent: bool) -> None:
        self.idempotent = idempotent
        self.frozen = False
        self.written: list[bytes] = []
        self.sends = 0
        #: idempotent: sends the producer keeps retrying until the broker answers
        self.held: list[tuple[asyncio.Future[None], bytes]] = []
        #: values the broker times out (not idempotent) while frozen
        self.refuse: BaseException | None = None
        self.fail_values: set[bytes] = set()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        self.sends += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.refuse is not None:
            done.set_exception(self.refuse)
        elif value in self.fail_values:
            self.fail_values.discard(value)  # once
            done.set_exception(RequestTimedOutError())
        elif not self.frozen:
            self.written.append(value)
            done.set_result(None)
        elif self.idempotent:
            self.held.append((done, value))
        else:
            done.set_exception(RequestTimedOutError())
        return done

    def thaw(self) -> None:
        self.frozen = False
        for done, value in self.held:
            self.written.append(value)
            done.set_result(None)
        self.held.clear()


def records(*values: str) -> list[Outgoing]:
    return [Outgoing("t", value.encode(), b"k") for value in values]


async def until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
async def test_a_frozen_broker_is_waited_for_and_each_record_lands_once(idempotent):
    broker = FakeBroker(idempotent=idempotent)
    outage = BrokerOutage(tolerance_s=60.0, ack_wait_s=0.05)
    broker.frozen = True
    publish = asyncio.create_task(
        publish_acknowledged(broker, records("a", "b"), outage, what="test")  # type: ignore[arg-type]
    )
    await until(lambda: outage.problem() is not None)  # the wait started: not ready
    assert not publish.done()
    reason = outage.problem()
    assert reason is not None and reason.startswith("waiting for the broker to take records")
    assert ("RequestTimedOutError" in reason) is not idempotent
    broker.thaw()
    await asyncio.wait_for(publish, 30)
    assert broker.written == [b"a", b"b"]
    assert outage.problem() is None
    assert outage.survived == 1


async def test_only_what_the_broker_refused_is_sent_again():
    broker = FakeBroker(idempotent=False)
    broker.fail_values = {b"alert-2"}
    outage = BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0)
    await publish_acknowledged(
        broker,  # type: ignore[arg-type]
        records("alert-1", "alert-2", "alert-3"),
        outage,
        what="test",
    )
    assert sorted(broker.written) == [b"alert-1", b"alert-2", b"alert-3"]
    assert broker.sends == 4  # alert-2 twice, the others once


async def test_an_empty_publish_leaves_a_wait_as_it_is():
    """Readiness changes only when a wait starts or a publish is acknowledged: an empty poll's
    publish (nothing changed) does not make the instance ready while another waits."""
    broker = FakeBroker(idempotent=True)
    outage = BrokerOutage(tolerance_s=60.0, ack_wait_s=0.05)
    broker.frozen = True
    waiting = asyncio.create_task(
        publish_acknowledged(broker, records("a"), outage, what="test")  # type: ignore[arg-type]
    )
    await until(lambda: outage.problem() is not None)
    await publish_acknowledged(broker, [], outage, what="test")
    assert outage.problem() is not None
    broker.thaw()
    await asyncio.wait_for(waiting, 30)
    assert outage.problem() is None


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
async def test_an_outage_past_the_tolerance_ends_the_wait(idempotent):
    broker = FakeBroker(idempotent=idempotent)
    broker.frozen = True
    outage = BrokerOutage(tolerance_s=0.3, ack_wait_s=0.05)
    with pytest.raises(BrokerOutageTooLong, match="FINOPS_BROKER_OUTAGE_TOLERANCE_S"):
        await publish_acknowledged(broker, records("a"), outage, what="breaker states")  # type: ignore[arg-type]
    assert broker.written == []
    assert outage.problem() is None  # the loop ends with the error; it no longer waits


async def test_an_error_retrying_cannot_fix_ends_at_once():
    broker = FakeBroker(idempotent=True)
    broker.refuse = TopicAuthorizationFailedError("finops.circuits.v1")
    outage = BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0)
    with pytest.raises(BrokerRefused, match="TopicAuthorizationFailedError"):
        await publish_acknowledged(broker, records("a", "b"), outage, what="breaker states")  # type: ignore[arg-type]
    assert broker.sends == 2  # each sent once, none again
    assert outage.problem() is None


class Cluster:
    """What the producer knows of the cluster: when a metadata request last got an answer,
    and the topics that answer held."""

    def __init__(self) -> None:
        self._last_successful_refresh_ms = 0.0
        self.topics: set[str] = set()

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0} if topic in self.topics else None

    def answered(self, *topics: str) -> None:
        self._last_successful_refresh_ms = time.time() * 1000
        self.topics = set(topics)


class UnknownTopicBroker(FakeBroker):
    """Fails the first ``failures`` sends with UnknownTopicOrPartitionError; ``answers``: the
    broker answered a metadata request while each of those sends ran, with the topics of
    ``known`` (none: a topic it does not know; the topic: its partition moved away from the
    broker the send went to), or not (frozen: the send got no metadata in its request
    timeout). ``through``: the error is raised by ``send`` (its wait for metadata) or set on
    the delivery (aiokafka's produce answer, after its own retries)."""

    def __init__(
        self,
        *,
        failures: int,
        answers: bool,
        known: tuple[str, ...] = (),
        through: str = "send",
    ) -> None:
        super().__init__(idempotent=False)
        self.failures = failures
        self.answers = answers
        self.known = known
        self.through = through
        self.client = type("Client", (), {"cluster": Cluster()})()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        if not self.failures:
            return await super().send(topic, value, key)
        self.failures -= 1
        self.sends += 1
        if self.answers:
            self.client.cluster.answered(*self.known)
        if self.through == "send":
            raise UnknownTopicOrPartitionError()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_exception(UnknownTopicOrPartitionError())
        return done


@pytest.mark.parametrize("through", ["send", "delivery"])
async def test_an_unknown_topic_the_broker_answered_about_ends_at_once(through):
    # the metadata the broker answered since the send began lacks the topic: it is gone
    broker = UnknownTopicBroker(failures=1, answers=True, through=through)
    outage = BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0)
    with pytest.raises(BrokerRefused, match="UnknownTopicOrPartitionError"):
        await publish_acknowledged(broker, records("a"), outage, what="breaker states")  # type: ignore[arg-type]
    assert (broker.sends, broker.written, outage.problem()) == (1, [], None)


async def test_an_unknown_topic_without_a_metadata_answer_is_waited_for():
    # a frozen broker: the send got no metadata within its request timeout
    broker = UnknownTopicBroker(failures=2, answers=False)
    outage = BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0)
    await publish_acknowledged(broker, records("a"), outage, what="breaker states")  # type: ignore[arg-type]
    assert (broker.sends, broker.written, outage.survived) == (3, [b"a"], 1)


@pytest.mark.parametrize("through", ["send", "delivery"])
async def test_a_partition_moving_to_another_broker_is_waited_for(through):
    """The broker a batch went to no longer hosts its partition (moved in a reassignment):
    it answers UNKNOWN_TOPIC_OR_PARTITION, aiokafka refreshes its metadata (which holds the
    topic, its new leader) and gives up on the batch at its request timeout. That ended the
    healer's loops, and its process, once any metadata refresh had succeeded."""
    broker = UnknownTopicBroker(failures=2, answers=True, known=("t",), through=through)
    outage = BrokerOutage(tolerance_s=60.0, ack_wait_s=1.0)
    await publish_acknowledged(broker, records("a", "b"), outage, what="breaker states")  # type: ignore[arg-type]
    assert sorted(broker.written) == [b"a", b"b"]
    assert (outage.survived, outage.problem()) == (1, None)


async def test_a_partition_that_stays_unknown_ends_past_the_tolerance():
    # metadata keeps naming the topic, but no broker takes its records: an outage like any
    broker = UnknownTopicBroker(failures=10**6, answers=True, known=("t",))
    outage = BrokerOutage(tolerance_s=0.3, ack_wait_s=0.05)
    with pytest.raises(BrokerOutageTooLong, match="UnknownTopicOrPartitionError"):
        await publish_acknowledged(broker, records("a"), outage, what="breaker states")  # type: ignore[arg-type]
    assert broker.written == []
