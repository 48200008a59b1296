"""`finops tail`, `finops topics` and `finops price` against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import pytest
from aiokafka.admin import NewTopic
from support import finops_piped as finops
from support import llm_call, publish, send_acknowledged

from finops.common.kafka import make_admin, make_producer
from finops.common.settings import CommonSettings
from finops.common.topic_admin import ensure_topics
from finops.common.topics import TopicSpec

pytestmark = pytest.mark.integration


async def test_tail_filters_and_topics_count_by_consuming(disk_infra):
    # infrastructure of its own: `finops topics` counts every topic on the broker by reading
    # it, and on the session's broker that was everything the worker's earlier tests sent
    infra = disk_infra
    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )
    # a name longer than a squeezed table column, to show it is never cut
    spec = TopicSpec(f"test.tail.{uuid.uuid4().hex}.a-rather-long-topic-name", 2, "agent_id", "x")
    await ensure_topics(settings, [spec])
    # created as Faust creates its apps' leader topics: no cleanup.policy of its own
    leader = f"test-{uuid.uuid4().hex[:8]}-__assignor-__leader"
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(leader, 1, 1)])
    finally:
        await admin.close()
    events = [llm_call("bot", model="gpt-4o" if i % 3 == 0 else "gpt-4o-mini") for i in range(30)]
    await publish(settings, spec.name, events)

    env = infra.env()
    tail = finops(
        "tail",
        spec.name,
        "--from-beginning",
        "--filter",
        "data.model=gpt-4o",
        "--json",
        "--max",
        "10",
        "--idle-timeout",
        "10",
        env=env,
    )
    assert tail.returncode == 0, tail.stderr
    rows = [json.loads(line) for line in tail.stdout.splitlines()]
    # Two partitions: order holds within a partition only.
    assert sorted(r["value"]["id"] for r in rows) == sorted(e["id"] for e in events[::3])
    assert {r["topic"] for r in rows} == {spec.name}
    assert {r["key"] for r in rows} == {"bot"}

    topics = finops("topics", env=env)
    assert topics.returncode == 0, topics.stderr
    cells = {
        row[0]: row
        for ln in topics.stdout.splitlines()
        if (row := [c.strip() for c in ln.split("│") if c.strip()])
    }
    assert cells[spec.name][:4] == [spec.name, "2", "30", "delete"]
    # the broker's default applies; the local broker does not say which (docs/cli.md)
    default = "delete" if not infra.local_broker else "default"
    assert cells[leader] == [leader, "1", "0", default, "no (internal)"]
    assert cells["finops.circuits.v1"][3:] == ["compact", "yes"]

    plain = finops("tail", spec.name, "--from-beginning", "--max", "30", env=env)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 30  # one line per record, however long, never wrapped
    assert all(ln.startswith(f"{spec.name}[") and "latency_ms=850" in ln for ln in lines)
    assert max(len(ln) for ln in lines) > 80

    # --filter compares JSON values: 850.0 is the events' 850, true their true
    typed = finops(
        "tail",
        spec.name,
        "--from-beginning",
        "--filter",
        "data.latency_ms=850.0",
        "--filter",
        "data.success=true",
        "--json",
        "--max",
        "30",
        "--idle-timeout",
        "10",
        env=env,
    )
    assert typed.returncode == 0, typed.stderr
    assert len(typed.stdout.splitlines()) == 30

    # Sent in batches: on the local broker the end offset a tail started from is the one after
    # the first record of the last batch, and the rest of that batch was printed as new.
    producer = make_producer(settings, linger_ms=100)
    await producer.start()
    try:
        await send_acknowledged(producer, spec.name, [llm_call("bot") for _ in range(40)])
    finally:
        await producer.stop()
    fresh = finops("tail", spec.name, "--json", "--max", "1", "--idle-timeout", "3", env=env)
    assert (fresh.returncode, fresh.stdout) == (0, "")
    # ... and what is published once it runs is printed: publish until it prints one
    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "finops.cli", "tail", spec.name, "--json", "--max", "1"),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
    )
    assert follower.stdout is not None
    line = asyncio.ensure_future(follower.stdout.readline())
    sent: set[str] = set()
    try:
        for _ in range(120):
            event = llm_call("bot")
            await publish(settings, spec.name, [event])
            sent.add(event["id"])
            printed, _ = await asyncio.wait({line}, timeout=0.5)  # a bound per round
            if printed:
                break
        out = await asyncio.wait_for(line, timeout=10)
        assert await asyncio.wait_for(follower.wait(), timeout=30) == 0
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
    assert json.loads(out)["value"]["id"] in sent

    missing = finops("tail", "no.such.topic", "--idle-timeout", "1", env=env)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == "error: no such topic: no.such.topic (`finops topics` lists them)\n"


def test_price_prints_the_total_for_raw_and_normalized_usage():
    raw = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1920},
    }
    normalized = {"input_tokens": 2006, "output_tokens": 300, "cached_input_tokens": 1920}
    outs = []
    for usage in (raw, normalized):
        result = finops(
            "price",
            "--provider",
            "openai",
            "--model",
            "gpt-4o",
            "--usage",
            json.dumps(usage),
            "--json",
            env={},
        )
        assert result.returncode == 0, result.stderr
        outs.append(json.loads(result.stdout))
    assert outs[0]["total_usd"] == outs[1]["total_usd"]
    # gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output
    assert outs[0]["total_usd"] == pytest.approx(86e-6 * 2.5 + 1920e-6 * 1.25 + 300e-6 * 10)
    bad = finops("price", "--provider", "openai", "--model", "gpt-4o", "--usage", "{", env={})
    assert bad.returncode == 2


async def test_topic_counts_do_not_stop_at_the_first_quiet_moment(infra):
    """``finops topics`` counted a topic as empty when its first fetch took longer than the
    quiet it waits for; counting now runs to the end offsets first.  With no quiet at all
    (``idle_s`` 0) the quiet-only rule read nothing."""
    from finops.cli.commands.ops import count_messages

    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )
    specs = [TopicSpec(f"test.count.{uuid.uuid4().hex[:8]}", 3, "agent_id", "x") for _ in range(3)]
    await ensure_topics(settings, specs)
    for n, spec in enumerate(specs):
        await publish(settings, spec.name, [llm_call(f"bot-{i}") for i in range(40 * (n + 1))])
    counts = await count_messages(settings, [s.name for s in specs], idle_s=0.0)
    assert counts == {spec.name: 40 * (n + 1) for n, spec in enumerate(specs)}


class _BrokerAsTansuAnswersOnALoadedMachine:
    """A real consumer whose ListOffsets(latest) answers 0 for every partition, as the local
    tansu broker answers offsets far short of the log's end (1, 13 and 16 for partitions
    holding 9, 15 and 16 records), and whose first poll comes back empty, as one does when
    the fetch is slow to come back on a loaded machine."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self._polls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return dict.fromkeys(tps, 0)

    async def getmany(self, *partitions: Any, **kwargs: Any) -> dict[Any, list[Any]]:
        self._polls += 1
        if self._polls == 1:
            return {}
        return await self._consumer.getmany(*partitions, **kwargs)


async def test_topic_counts_run_to_the_end_the_fetches_report_not_the_brokers_end_offsets(
    infra, monkeypatch
):
    """`finops topics` on a busy machine counted 66 (and 78) of a topic's 80 records: the
    read ended at the first empty poll past the end offsets the local broker reported, which
    were short of the records it had acknowledged. The end is now the high watermark the
    partition's first fetch reports; one no fetch has answered yet is not read to its end."""
    from finops.cli.commands.ops import count_messages
    from finops.common import kafka

    settings = CommonSettings(
        kafka_bootstrap=infra.kafka_bootstrap, kafka_enable_idempotence=not infra.local_broker
    )
    # three partitions, two of them empty: a fetch of an empty one reports its end too
    specs = [
        TopicSpec(f"test.count.{uuid.uuid4().hex[:8]}", 3, "agent_id", "x"),
        TopicSpec(f"test.count.{uuid.uuid4().hex[:8]}", 3, "agent_id", "x"),
    ]
    await ensure_topics(settings, specs)
    await publish(settings, specs[0].name, [llm_call(f"bot-{i}") for i in range(30)])
    await publish(settings, specs[1].name, [llm_call("one-bot") for _ in range(7)])
    make_consumer = kafka.make_consumer
    monkeypatch.setattr(
        kafka,
        "make_consumer",
        lambda *args, **kwargs: _BrokerAsTansuAnswersOnALoadedMachine(
            make_consumer(*args, **kwargs)
        ),
    )
    counts = await count_messages(settings, [s.name for s in specs], idle_s=0.0)
    assert counts == {specs[0].name: 30, specs[1].name: 7}


@pytest.mark.parametrize(
    ("command", "revision"),
    [
        ("upgrade", "no-such-revision"),
        ("downgrade", "no-such-revision"),
    ],
)
def test_a_revision_no_service_has_is_one_line_and_touches_nothing(infra, command, revision):
    # 'auth@base' has an answer of its own (test_db_cli.py): auth has no such branch label;
    # a mistyped option ('--hlep') is a usage error (tests/unit/cli/test_usage_errors.py)
    result = finops("db", command, revision, env=infra.env())
    assert result.returncode == 2
    assert result.stderr == (
        f"error: no service has the revision '{revision}': give head, base, a step such as -1,"
        " a service's revision id, or SERVICE@REVISION\n"
    )
    assert result.stdout == ""
