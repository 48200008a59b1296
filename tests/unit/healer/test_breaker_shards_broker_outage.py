"""A broker that cannot take the breakers' states for a while does not end the healer.

The owner of the outcome partitions publishes each changed breaker (and an alert for each
transition) after every batch and at every tick. A broker that timed out those sends (frozen
for about ten seconds, a leader that moved) ended the ticks loop, and the healer process with
it (``FINOPS_EXIT_ON_LOOP_FAILURE``): every instance restarted and rebalanced after each such
outage. What was not published stays queued and goes out once the broker takes it; no
checkpoint holds a transition before it is published.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import RequestTimedOutError
from stream_fakes import ScriptedConsumer

from finops.common.log_position import ResumePlan
from finops.healer.adapters.breaker_shards import BreakerShards
from finops.healer.adapters.circuits import ProviderOutcome
from finops.healer.adapters.circuits_stream import BreakerPipeline
from finops.healer.app import _circuits_check
from finops.healer.domain.breakers import BreakerConfig

TOPIC = "finops.provider-outcomes.v1"
CONFIG = BreakerConfig()


class Broker:
    """A producer whose acknowledgements fail while ``down``; what it took, in order."""

    def __init__(self) -> None:
        self.down = False
        self.taken: list[tuple[str, dict[str, Any]]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.down:
            ack.set_exception(RequestTimedOutError())
        else:
            self.taken.append((topic, json.loads(value)))
            ack.set_result(None)
        return ack


class Store:
    def __init__(self) -> None:
        self.saved: list[str] = []

    async def load(self, name: str) -> None:
        return None

    async def save_at(self, name: str, checkpoint: Any, position: int | None) -> bool:
        self.saved.append(name)
        return True


async def resume(saved: Any, cluster_id: Any) -> ResumePlan:
    return ResumePlan("cluster", dict(saved))


def failure(offset: int) -> ProviderOutcome:
    return ProviderOutcome(
        str(uuid.UUID(int=offset + 1)), "openai", "gpt-4o", True, 1000.0 + offset, "server_error"
    )


async def owner_with_an_opened_breaker(broker: Broker, store: Store) -> BreakerShards:
    shards = BreakerShards(
        ScriptedConsumer(asyncio.Event(), TOPIC, lambda p, o: b""),  # type: ignore[arg-type]
        broker,  # type: ignore[arg-type]
        store,  # type: ignore[arg-type]
        config=CONFIG,
        topic=TOPIC,
        resume=resume,
        name="breakers",
        circuits_topic="finops.circuits.v1",
        alerts_topic="finops.alerts.v1",
        published=None,  # type: ignore[arg-type]
        checkpoint_interval_s=0.0,
    )
    await shards.adopt({0})
    shard = shards.shards[0]
    for offset in range(CONFIG.min_calls):
        shard.count(failure(offset))
    shards.offsets[0] = CONFIG.min_calls
    shards.dirty.add(0)
    return shards


def states(broker: Broker) -> list[str]:
    return [value["state"] for topic, value in broker.taken if topic == "finops.circuits.v1"]


def alerts(broker: Broker) -> list[str]:
    return [value["kind"] for topic, value in broker.taken if topic == "finops.alerts.v1"]


async def test_a_tick_the_broker_times_out_keeps_the_change_for_the_next_tick():
    broker, store = Broker(), Store()
    shards = await owner_with_an_opened_breaker(broker, store)
    broker.down = True
    await shards.tick(1_000.0 + CONFIG.min_calls)  # raised, and the ticks loop ended
    assert broker.taken == []
    broker.down = False
    await shards.tick(1_000.0 + CONFIG.min_calls)
    assert states(broker) == ["open"]
    assert alerts(broker) == ["breaker_open"]


async def test_a_republish_the_broker_times_out_is_tried_again_at_the_next_tick():
    broker, store = Broker(), Store()
    shards = await owner_with_an_opened_breaker(broker, store)
    await shards.publish()
    broker.taken.clear()
    shards.republish_interval_s = 0.0
    broker.down = True
    await shards.tick(1_000.0 + CONFIG.min_calls)
    broker.down = False
    await shards.tick(1_000.0 + CONFIG.min_calls)
    assert states(broker) == ["open"]
    assert alerts(broker) == []


async def test_a_batch_whose_changes_the_broker_times_out_is_not_checkpointed_until_published():
    broker, store = Broker(), Store()
    shards = await owner_with_an_opened_breaker(broker, store)
    broker.down = True
    async with shards.lock:
        await shards.after_batch()  # raised, and the intake ended
    assert (broker.taken, store.saved) == ([], [])
    broker.down = False
    async with shards.lock:
        await shards.after_batch()
    assert states(broker) == ["open"]
    assert alerts(broker) == ["breaker_open"]
    assert store.saved == ["breakers:p0"]


async def test_a_checkpoint_whose_publish_the_broker_times_out_keeps_the_change():
    broker, store = Broker(), Store()
    shards = await owner_with_an_opened_breaker(broker, store)
    broker.down = True
    async with shards.lock:
        await shards.checkpoint_or_retry_later()  # logged, retried later: the change was lost
    assert (broker.taken, store.saved) == ([], [])
    broker.down = False
    async with shards.lock:
        await shards.checkpoint_locked()
    assert states(broker) == ["open"]
    assert alerts(broker) == ["breaker_open"]
    assert store.saved == ["breakers:p0"]


async def until(stop: asyncio.Event) -> None:
    await stop.wait()


async def test_the_instance_is_not_ready_while_its_breakers_states_are_not_published():
    """Kept alive through the outage, the instance must not look ready while the broker
    refuses its breakers' states (an ACL, too few in-sync replicas: it may last)."""
    broker, store = Broker(), Store()
    shards = await owner_with_an_opened_breaker(broker, store)
    stop = asyncio.Event()
    loops = asyncio.create_task(until(stop))
    app: Any = SimpleNamespace(
        state=SimpleNamespace(
            circuits=SimpleNamespace(running=True), breakers=BreakerPipeline(shards, loops)
        )
    )
    try:
        broker.down = True
        await shards.tick(1_000.0 + CONFIG.min_calls)
        with pytest.raises(RuntimeError, match=r"breaker states not published .*RequestTimedOut"):
            await _circuits_check(app)
        broker.down = False
        await shards.tick(1_000.0 + CONFIG.min_calls)
        await _circuits_check(app)  # published: ready
    finally:
        stop.set()
        await loops
