"""Switching the optimizer between one worker and partitioned learning, and back, on a real
broker and PostgreSQL: partitioned learning off, on, off, on again. Each partitioned phase
runs one worker of partitioned learning (``lab.worker()``), owning all six partitions: what
changes from ``--optimizer-workers 1`` to ``2`` is the kind of learning, and what two
workers add (a rebalance between them) is tested in test_optimizer_partitioned.py.

Every event is counted once in each mode: the one worker resumes from its own checkpoint (made
before the switch to partitions) and replays what came since; the partitions resume from theirs
and the forwarding group from the offsets it committed. Operator settings follow every switch:
each mode takes, from the record of the latest change of every setting, those made in the
other mode since its checkpoint; a setting changed again has its latest value, a deleted one
stays deleted (docs/optimizer.md, "Fewer workers, and back to one worker").

All events are of one agent, so they are in one partition of the cost topic, read in order:
when a count reaches a phase's total, every earlier record has been read too, and how many
records the intake or the forwarder took since it started says where it resumed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import test_optimizer_partitioned
from asgi_lifespan import LifespanManager
from support import wait_until
from test_optimizer_partitioned import PartitionedLab, events_in_view

from finops.common.auth import TokenVerifier
from finops.common.auth.blocklist import blocklist_redis
from finops.optimizer.app import create_app
from finops.optimizer.settings import OptimizerSettings

pytestmark = pytest.mark.integration

COST = 0.25  # per call: sums of it are exact in binary floating point
SCOPE = "task-0"  # an objective's scope
NANO = "gpt-4.1-nano|openai|default"  # a catalog arm

#: the partitioned lab of test_optimizer_partitioned.py, set up and torn down as there
lab = test_optimizer_partitioned.lab


@asynccontextmanager
async def one_worker(lab: PartitionedLab) -> AsyncIterator[httpx.AsyncClient]:
    """The optimizer with partitioned learning off (``--optimizer-workers 1``), on the lab's
    topics and checkpoint name, in a consumer group of its own."""
    settings: OptimizerSettings = lab.settings.model_copy(
        update={"partitioned_learning": False, "consumer_group": f"{lab.settings.owner_group}-1"}
    )
    verifier = TokenVerifier(settings, blocklist_redis(settings.redis_url), lab.tokens.keys)
    app = create_app(settings, verifier=verifier)
    async with LifespanManager(app, startup_timeout=90, shutdown_timeout=60):
        headers = {"Authorization": f"Bearer {lab.token}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://optimizer", headers=headers
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def fleet(client: httpx.AsyncClient) -> tuple[int, int, float]:
    summary = (await client.get("/api/stats/summary")).json()
    return summary["events"], summary["fleet"]["calls"], summary["fleet"]["spend_usd"]


async def budget_ids(client: httpx.AsyncClient) -> list[str]:
    answer = (await client.get("/api/budgets")).json()
    return [status["budget"]["id"] for status in answer["budgets"]]


async def put_budget(client: httpx.AsyncClient, budget_id: str, limit_usd: float = 100.0) -> None:
    body = {"scope": "team", "subject": budget_id, "period": "day", "limit_usd": limit_usd}
    answer = await client.put(f"/api/budgets/{budget_id}", json=body)
    assert answer.status_code == 200, answer.text


async def delete_budget(client: httpx.AsyncClient, budget_id: str) -> None:
    answer = await client.delete(f"/api/budgets/{budget_id}")
    assert answer.status_code == 204, answer.text


async def set_floor(client: httpx.AsyncClient, quality_floor: float) -> None:
    answer = await client.put(f"/api/objectives/{SCOPE}", json={"quality_floor": quality_floor})
    assert answer.status_code == 200, answer.text


Settings = tuple[dict[str, float], float | None, list[str], list[str]]


async def operator_settings(client: httpx.AsyncClient) -> Settings:
    """Budgets (id: limit), the quality floor of :data:`SCOPE`, catalog arms, withdrawn arms."""
    answer = (await client.get("/api/budgets")).json()
    budgets = {s["budget"]["id"]: s["budget"]["limit_usd"] for s in answer["budgets"]}
    floor = (await client.get("/api/objectives")).json().get(SCOPE, {}).get("quality_floor")
    catalog = (await client.get("/api/catalog")).json()
    return budgets, floor, [a["arm"] for a in catalog["arms"]], catalog["withdrawn"]


async def settings_reach(client: httpx.AsyncClient, expected: Settings) -> None:
    """Wait until ``client`` answers with the ``expected`` settings (a view of the partitions
    shows what their owners publish about a second later); fail naming what it answers."""
    seen: list[Settings] = []

    async def reached() -> bool:
        seen[:] = [await operator_settings(client)]
        return seen[0] == expected

    try:
        await wait_until(reached, 60, f"the settings {expected}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last answer: {seen}") from None


async def test_one_worker_partitioned_one_worker_partitioned_count_every_event_once(
    lab: PartitionedLab,
) -> None:
    # 1. One worker learns 40 events and keeps a budget.
    async with one_worker(lab) as client:
        await lab.publish_calls(40, COST)
        await wait_until(lambda: _total(client, 40), 90, "the one worker to count 40 events")
        await put_budget(client, "before")

    # 2. Partitioned (one worker of it): the new forwarding group reads the topic from its
    #    start; the new partitions take the one worker's settings.
    async with lab.worker() as client:
        await lab.publish_calls(30, COST)
        await wait_until(lambda: _total(client, 70), 90, "the partitions to count 70 events")
        assert client.app.state.learning.forwarder.forwarded == 70  # type: ignore[attr-defined]
        await put_budget(client, "during")
        await wait_until(lambda: _has(client, "during"), 30, "the view to hold the budget")
        assert await budget_ids(client) == ["before", "during"]

    # 3. One worker again: its checkpoint is the one of step 1 (40 events); it replays the 30
    #    events the partitions learned, then the 20 new ones, each once.
    async with one_worker(lab) as client:
        intake = client.app.state.intake  # type: ignore[attr-defined]
        await lab.publish_calls(20, COST)
        await wait_until(lambda: _total(client, 90), 90, "the one worker to count 90 events")
        assert intake.events == 90  # 40 restored + 50 records read: none from before step 2
        assert await fleet(client) == (90, 90, 90 * COST)
        await put_budget(client, "after")

    # 4. Partitioned again: each partition resumes from its own checkpoint and the forwarding
    #    group from its committed offsets: only the 20 + 10 newer events are forwarded.
    async with lab.worker() as client:
        await lab.publish_calls(10, COST)
        await wait_until(lambda: _total(client, 100), 90, "the partitions to count 100 events")
        assert client.app.state.learning.forwarder.forwarded == 30  # type: ignore[attr-defined]
        assert await fleet(client) == (100, 100, 100 * COST)


async def test_operator_settings_follow_every_switch_the_latest_change_winning(
    lab: PartitionedLab,
) -> None:
    # 1. One worker: two budgets, an objective.
    async with one_worker(lab) as client:
        await put_budget(client, "before")
        await put_budget(client, "gone")
        await set_floor(client, 0.5)
        assert await operator_settings(client) == ({"before": 100, "gone": 100}, 0.5, [], [])

    # 2. Partitioned: the one worker's settings; then one budget changed, one deleted, one
    #    created, the objective changed and an arm offered.
    async with lab.worker() as client:
        await settings_reach(client, ({"before": 100, "gone": 100}, 0.5, [], []))
        await put_budget(client, "before", 200)
        await delete_budget(client, "gone")
        await put_budget(client, "during")
        await set_floor(client, 0.6)
        assert (
            await client.post("/api/catalog", json={"model": "gpt-4.1-nano", "provider": "openai"})
        ).is_success
        await settings_reach(client, ({"before": 200, "during": 100}, 0.6, [NANO], []))

    # 3. One worker again: what the partitions changed, from its first answer (the settings
    #    are taken before it serves); then changes in this mode.
    async with one_worker(lab) as client:
        assert await operator_settings(client) == (
            {"before": 200, "during": 100},
            0.6,
            [NANO],
            [],
        )
        await put_budget(client, "during", 300)
        await delete_budget(client, "before")
        await put_budget(client, "after")
        await set_floor(client, 0.7)
        assert (await client.delete(f"/api/catalog/{NANO}")).status_code == 204

    # 4. Partitioned again: each partition restores its own checkpoint (of step 2), then takes
    #    the one worker's later changes; none of the older ones comes back.
    async with lab.worker() as client:
        expected: Settings = ({"during": 300, "after": 100}, 0.7, [], [NANO])
        await settings_reach(client, expected)
        await lab.publish_calls(8, COST)  # a record in every partition's way: still the same
        await wait_until(lambda: _total(client, 8), 90, "the partitions to count 8 events")
        await settings_reach(client, expected)

    # 5. And one worker once more: unchanged.
    async with one_worker(lab) as client:
        assert await operator_settings(client) == expected


async def _total(client: httpx.AsyncClient, events: int) -> bool:
    return await events_in_view(client) == events


async def _has(client: httpx.AsyncClient, budget_id: str) -> bool:
    return budget_id in await budget_ids(client)
