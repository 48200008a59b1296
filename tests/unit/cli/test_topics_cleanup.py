"""`finops topics` shows each topic's cleanup policy as the broker reports it, internal topics
(the Faust apps' own) included, instead of ``?`` for every topic that is not declared."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.protocol.admin import DescribeConfigsResponse_v2

from finops.cli.commands import ops

LEADER = "finops-healer-__assignor-__leader"  # Faust creates it with no cleanup.policy
CHANGELOG = "finops-healer-breakers-changelog"  # a Faust table's, created compacted


class Admin:
    """An admin client of a broker that, like the local one (tansu), reports only the configs
    set on a topic; ``lost`` it cannot describe."""

    configs = {
        "agent.cost.v1": [("cleanup.policy", "delete"), ("retention.ms", "604800000")],
        "finops.circuits.v1": [("cleanup.policy", "compact")],
        CHANGELOG: [("cleanup.policy", "compact")],
        LEADER: [],
    }

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return ["__consumer_offsets", *self.configs, "lost"]

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": [{"partition": 0}]} for n in names]

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        names = [r.name for r in resources]
        assert "__consumer_offsets" not in names
        answered = [
            (0, None, 2, n, [(k, v, False, 1, False, []) for k, v in self.configs[n]])
            for n in names
            if n != "lost"
        ]
        return [DescribeConfigsResponse_v2(0, [*answered, (3, "unknown", 2, "lost", [])])]


def test_every_topic_shows_the_cleanup_policy_the_broker_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("finops.common.kafka.make_admin", lambda settings: Admin())
    rows = asyncio.run(ops._topics(count=False))
    assert rows == [
        ("agent.cost.v1", 1, "-", "delete", "yes"),
        (LEADER, 1, "-", "default", "no (internal)"),
        (CHANGELOG, 1, "-", "compact", "no (internal)"),
        ("finops.circuits.v1", 1, "-", "compact", "yes"),
        ("lost", 1, "-", "?", "no (internal)"),
    ]
