"""``finops_experiments_announcements_read_total`` counts the kinds the service writes, and
every other kind a record of ``finops.experiments.v1`` brings as ``other``: the label's values
stay the documented ones whatever another writer (or a newer version) puts on the topic."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from finops.experiments.agents import read_announcement


def read(kind: str) -> float:
    labels = {"kind": kind}
    return REGISTRY.get_sample_value("finops_experiments_announcements_read_total", labels) or 0.0


async def test_a_kind_the_service_does_not_write_counts_as_other():
    before = read("other"), read("decision")
    for body in (b'{"kind": "made-up-1"}', b'{"kind": "made-up-2"}', b"{}", b'{"kind": 7}'):
        await read_announcement(body)
    await read_announcement(b'{"kind": "decision"}')
    assert (read("other"), read("decision")) == (before[0] + 4, before[1] + 1)
    assert (
        REGISTRY.get_sample_value(
            "finops_experiments_announcements_read_total", {"kind": "made-up-1"}
        )
        is None
    )


async def test_a_record_that_is_not_an_object_is_unreadable():
    before = read("unreadable")
    with pytest.raises(ValueError):
        await read_announcement(b"[1]")
    assert read("unreadable") == before + 1
