"""Work split by key across instances: which partition owns a key, and the forwarding loop.

A service that keeps state per key (a breaker per provider/model, an experiment's statistics
per experiment id) re-keys its input onto an internal topic by that key; each instance of the
service's owner group then owns some partitions, and with them the state of their keys.
:func:`partition_for` is the producer's default partitioner, so an owner knows which keys are
its own before any of their records arrives; :func:`consume_in_slices` is the loop of a
consumer that commits after each partition's records are handled, and
:func:`forward_in_slices` the loop of a forwarding consumer that waits for the broker's
acknowledgements once per batch, not once per slice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

#: records handled between two turns of the event loop
HANDLE_AT_ONCE = 100


def partition_for(key: str, partitions: int) -> int:
    """The partition the default partitioner (Kafka's murmur2) gives ``key``.

    Examples
    --------
    >>> partition_for("provider/model", 3) == partition_for("provider/model", 3)
    True
    >>> sorted({partition_for(f"key-{i}", 3) for i in range(50)})
    [0, 1, 2]
    """
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


async def consume_in_slices(
    consumer: AIOKafkaConsumer,
    handle: Callable[[list[Any]], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Hand each batch to ``handle`` in slices, committing each partition after its records
    are handled (at least once: whoever reads them again deduplicates), until ``stop``."""
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=200, max_records=2000)
        for tp, records in batch.items():
            for start in range(0, len(records), HANDLE_AT_ONCE):
                await handle(records[start : start + HANDLE_AT_ONCE])
                # getmany() returns without suspending while records are buffered: the API
                # gets its turn between slices, not after 2,000 records.
                await asyncio.sleep(0)
            try:
                await consumer.commit({tp: records[-1].offset + 1})
            except KafkaError as exc:
                # The group rebalanced under the batch: the partition's next owner reads these
                # records again (at least once), so the loop goes on rather than dying.
                log.warning("offsets not committed", extra={"tp": str(tp), "error": repr(exc)})


async def forward_in_slices(
    consumer: AIOKafkaConsumer,
    send: Callable[[list[Any]], Awaitable[Sequence[Awaitable[Any]]]],
    stop: asyncio.Event,
) -> None:
    """Forward each batch in slices: ``send`` queues a slice's records on a producer and
    returns their delivery futures; once the whole batch is acknowledged, its offsets are
    committed (at least once), until ``stop``.

    Waiting for the acknowledgements of each slice before sending the next would cap the
    forwarding at one slice per broker round trip.
    """
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=200, max_records=2000)
        deliveries: list[Awaitable[Any]] = []
        for records in batch.values():
            for start in range(0, len(records), HANDLE_AT_ONCE):
                deliveries.extend(await send(records[start : start + HANDLE_AT_ONCE]))
                await asyncio.sleep(0)  # the API's turn between slices
        await asyncio.gather(*deliveries)
        if batch:
            try:
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
            except KafkaError as exc:
                log.warning("offsets not committed", extra={"error": repr(exc)})
