"""Which partition owns a key: the producer's own choice, so owners know their keys."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from finops.common.partitions import partition_for


def test_partition_for_is_the_default_partitioners_choice() -> None:
    keys = [f"experiment-{i}" for i in range(200)]
    chosen = [DefaultPartitioner()(k.encode(), [0, 1, 2], [0, 1, 2]) for k in keys]
    assert [partition_for(k, 3) for k in keys] == chosen
    assert set(chosen) == {0, 1, 2}
