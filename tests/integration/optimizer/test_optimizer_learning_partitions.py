"""A worker whose FINOPS_LEARNING_PARTITIONS differs from its learning topic's partitions
refuses to start, naming both.

Walking the scale-out, a third optimizer worker started with FINOPS_LEARNING_PARTITIONS=3 next
to two of the default 6 was ready at once and forwarded each task type to the partition its
count of 3 gives: every task type was then learned in two partitions (`/api/tasks`: 12 tasks
for 6 task types), and the view answered from one of the two, the other's outcomes missing.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_optimizer_partitioned import PartitionedLab

pytestmark = pytest.mark.integration


@pytest.fixture
async def lab(infra_env: Any, tmp_path: Any) -> Any:
    lab = PartitionedLab(infra_env, tmp_path)
    await lab.setup()
    yield lab
    await lab.producer.stop()


@pytest.mark.parametrize("partitions", [3, 12])
async def test_a_worker_counting_other_learning_partitions_than_its_topic_refuses_to_start(
    lab: PartitionedLab, partitions: int
) -> None:
    lab.settings = lab.settings.model_copy(update={"learning_partitions": partitions})
    with pytest.raises(RuntimeError) as refused:
        async with lab.worker():
            pass
    assert str(refused.value) == (
        f"FINOPS_LEARNING_PARTITIONS={partitions}, but the learning topic"
        f" {lab.learning.name} has 6 partitions: every optimizer worker must count the"
        " partitions the topic has (task types are mapped to partitions by that count)"
    )
