"""Two experiments instances split the experiments by partition of their id, both serve every
experiment's results, and when one stops the other takes its experiments over with every
event counted once."""

from __future__ import annotations

import random

import pytest
from support import wait_until

pytestmark = pytest.mark.integration

EQUAL = {"A": 0.01, "B": 0.01}
EQUAL_QUALITY = {"A": 0.85, "B": 0.85}


def owner_of(intakes: list, eid: str) -> list[int]:
    """The instances whose analysis holds the experiment."""
    return [i for i, intake in enumerate(intakes) if intake.state_of(eid) is not None]


async def test_two_instances_split_experiments_and_one_takes_over_with_exact_counts(lab) -> None:
    rng = random.Random(11)
    async with lab.service() as first:
        await lab.announce_task_type(first)
        async with lab.service() as second:
            intakes = [first.app.state.intake, second.app.state.intake]  # type: ignore[attr-defined]

            def split() -> bool:
                owned = [set(intake.shards) for intake in intakes]
                return all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == {0, 1, 2}

            await wait_until(split, 60, "the two instances to share the event partitions")
            eids: list[str] = []
            # experiments until each instance owns at least one (the id's hash decides)
            while len(eids) < 4 or not _on_both(intakes, eids):
                eids.append(await lab.create_and_start(first, min_samples=100_000))
                assert len(eids) <= 30, "ids never landed on both instances' partitions"
            for eid in eids:
                await lab.publish(lab.calls(eid, 60, rng, cost=EQUAL, quality=EQUAL_QUALITY))
            for eid in eids:
                counted = await lab.counted(first, eid, 60, stall_s=90)
                assert [v["n"] for v in counted["variants"]] == [30, 30]

            def split_by_owner() -> bool:
                # polled: a member that misses a heartbeat on the loaded machine rejoins, and
                # while the group rebalances a partition has no owner for a moment
                owners = [owner_of(intakes, eid) for eid in eids]
                return all(len(o) == 1 for o in owners) and {o[0] for o in owners} == {0, 1}

            await wait_until(split_by_owner, 90, "each experiment analysed by one instance")
            for eid in eids:  # the non-owner answers from the owner's checkpointed snapshot

                async def same(eid: str = eid) -> bool:
                    one, other = await lab.results(first, eid), await lab.results(second, eid)
                    return one == other and sum(v["n"] for v in one["variants"]) == 60

                await wait_until(same, 60, "both instances to answer the same results")

        # the second instance stopped: the first owns every partition and goes on from the
        # second's checkpoints
        await wait_until(
            lambda: set(intakes[0].shards) == {0, 1, 2}, 90, "the first to own every partition"
        )
        for eid in eids:
            await lab.publish(lab.calls(eid, 40, rng, cost=EQUAL, quality=EQUAL_QUALITY, start=60))
        for eid in eids:
            final = await lab.counted(first, eid, 100, stall_s=90)
            # exact: nothing lost, nothing counted twice (records that the rebalances made
            # stage 1 forward twice are dropped by event id, in duplicates_dropped)
            assert [v["n"] for v in final["variants"]] == [50, 50]
            assert owner_of(intakes[:1], eid) == [0]


def _on_both(intakes: list, eids: list[str]) -> bool:
    """Whether the experiments' partitions are owned by both instances."""
    first = intakes[0]
    return {first.owner_partition(eid) in first.shards for eid in eids} == {True, False}
