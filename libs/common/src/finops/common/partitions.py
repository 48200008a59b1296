"""Work split by key across instances: which partition owns a key.

A service that keeps state per key (a breaker per provider/model, an experiment's statistics
per experiment id) re-keys its input onto an internal topic by that key; each instance of the
service's owner group then owns some partitions, and with them the state of their keys.
:func:`partition_for` is the producer's default partitioner, so an owner knows which keys are
its own before any of their records arrives. Both stages hand the event loop back every
``HANDLE_AT_ONCE`` records: the forwarding stage consumes with
:class:`~finops.common.consumer.AtLeastOnceConsumer`, the owners with
:class:`~finops.common.owned_partitions.OwnedPartitions`.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

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
