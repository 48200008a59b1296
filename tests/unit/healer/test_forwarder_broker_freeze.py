"""Stage 1 of the circuit breakers (errors and costs forwarded as outcomes) rides out a
broker that times its sends out: the batch's outcomes are sent again until acknowledged, each
once, and only then are its offsets committed. It raised the broker's RequestTimedOutError,
which ended the breakers' loops and the process."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import RequestTimedOutError
from support import llm_call

from finops.common.broker_outage import BrokerOutage
from finops.healer.adapters.circuits_stream import OutcomeForwarder, forwarding_loop
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.settings import HealerSettings

COST = "agent.cost.v1"


class FrozenBroker:
    """A producer that is not idempotent: while frozen its sends fail with the timeout."""

    def __init__(self) -> None:
        self.frozen = True
        self.written: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.frozen:
            done.set_exception(RequestTimedOutError())
        else:
            self.written.append(value)
            done.set_result(None)
        return done


class Commits:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


async def test_a_batch_forwarded_through_a_frozen_broker_lands_once_then_commits() -> None:
    outage = BrokerOutage(tolerance_s=60.0, ack_wait_s=0.05)
    classifier = ErrorClassifier()
    forwarder = OutcomeForwarder(HealerSettings(), lambda: classifier, outage=outage)
    broker, consumer = FrozenBroker(), Commits()

    async def flush() -> None:
        await forwarder.forwarded(broker)  # type: ignore[arg-type]

    loop = forwarding_loop(consumer, broker, forwarder.forward, flush)  # type: ignore[arg-type]
    tp = TopicPartition(COST, 0)
    records = [
        SimpleNamespace(
            topic=COST,
            partition=0,
            offset=offset,
            key=b"bot",
            value=json.dumps(llm_call("bot", provider="openai", model="gpt-4o")).encode(),
        )
        for offset in range(3)
    ]
    batch = asyncio.create_task(loop.process_batch({tp: records}))
    while outage.problem() is None:
        await asyncio.sleep(0.01)
    assert consumer.commits == []  # nothing committed while the outcomes wait
    broker.frozen = False
    await asyncio.wait_for(batch, 30)
    ids = sorted(json.loads(value)["event_id"] for value in broker.written)
    assert len(ids) == len(set(ids)) == 3
    assert consumer.commits == [{tp: 3}]
    assert outage.problem() is None
