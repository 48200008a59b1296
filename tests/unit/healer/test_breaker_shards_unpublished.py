"""What a publish the broker did not take had drained is put back: the next checkpoint (a
rebalance's release, after the loop ended on the error) publishes it first. Drained and lost,
a breaker's opening would be checkpointed and never announced (no alert), since the next
owner replays from that checkpoint, past it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from test_breaker_shards_publish_first import PER_TURN, Log, breaker_shards


class RefusingLog(Log):
    """The broker refuses every record (an ACL) until ``refusing`` is cleared."""

    refusing = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        if not self.refusing:
            return await super().send(topic, value, key)
        refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        refused.set_exception(TopicAuthorizationFailedError(topic))
        return refused


async def test_a_refused_publish_is_published_before_the_next_checkpoint() -> None:
    log = RefusingLog()
    consumer, shards = breaker_shards(log)
    await shards.adopt({0})
    async with shards.lock:  # a turn of failures opens the breaker
        shard = shards.shards[0]
        await shards.handle(0, shard, [consumer.record(0, o) for o in range(PER_TURN)])
        shards.offsets[0] = PER_TURN
    with pytest.raises(Exception, match="TopicAuthorizationFailed"):
        await shards.publish()  # the loop ends on it
    assert log.entries == []
    log.refusing = False  # the ACL mended before the partition moves
    await shards.release({0})
    assert log.entries == [
        ("sent", "finops.circuits.v1"),
        ("sent", "finops.alerts.v1"),
        ("saved", "breakers:p0"),
    ]
