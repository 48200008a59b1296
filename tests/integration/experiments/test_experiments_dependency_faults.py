"""The experiments service through a PostgreSQL outage: its analysis of tagged calls goes on
from its checkpoints once the database is back, counting every call once."""

from __future__ import annotations

import random

import pytest
from fault_injection import FaultyLink
from support import llm_call, wait_until

pytestmark = pytest.mark.integration

EQUAL = {"A": 0.01, "B": 0.01}
QUALITY = {"A": 0.85, "B": 0.85}


async def test_the_analysis_goes_on_after_a_postgres_outage(lab) -> None:
    link = await FaultyLink(lab.settings.database_url).start()
    lab.settings = lab.settings.model_copy(update={"database_url": link.url})
    rng = random.Random(5)
    new_task_type = f"translate-{lab.tag}"
    try:
        async with lab.service() as client:
            await lab.announce_task_type(client)
            eid = await lab.create_and_start(client, min_samples=100_000)
            await lab.publish(lab.calls(eid, 100, rng, cost=EQUAL, quality=QUALITY))
            await lab.counted(client, eid, 100)

            await link.cut()
            # recording a task type it has not seen needs PostgreSQL: the intake meets the
            # outage for sure (its refresh of the definitions does too)
            await lab.publish([llm_call("bot", task_type=new_task_type, cost_usd=0.01)])

            async def intake_down() -> bool:
                checks = (await client.get("/readyz")).json()["checks"]
                return bool(checks["intake"] != "ok")

            await wait_until(intake_down, 60, "the intake to meet the outage")
            await link.restore()

            more = lab.calls(eid, 100, rng, cost=EQUAL, quality=QUALITY, start=100)
            await lab.publish(more)
            final = await lab.counted(client, eid, 200)
            assert [v["n"] for v in final["variants"]] == [100, 100]
            repo = client.app.state.experiments
            await wait_until(
                lambda: repo.task_type_known(new_task_type), 60, "the new task type recorded"
            )

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            # ready once the new intake has run intake_healthy_after_s (the lab's: 1 s)
            await wait_until(ready, 60, "the intake ready again")
    finally:
        await link.close()
