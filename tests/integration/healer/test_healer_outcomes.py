"""Outcomes on the real broker teach the healer's learner and feed its stats, and both survive
a restart (one healer app at a time: two Faust apps alive in one process can hang)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from healer_helpers import auth, healer, settings_for
from support import llm_call, wait_until

from finops.common.kafka import make_producer
from finops.common.topics import AGENT_COST

pytestmark = pytest.mark.integration


async def test_outcomes_feed_the_stats_and_the_learner_and_survive_a_restart(
    infra: Any, tmp_path: Any
) -> None:
    settings = settings_for(infra, tmp_path).model_copy(
        update={
            "effectiveness_checkpoint_name": f"healer-outcomes-{uuid.uuid4().hex[:8]}",
            "effectiveness_checkpoint_interval_s": 0.2,
        }
    )
    provider = f"prov{uuid.uuid4().hex[:6]}"  # its own (kind, provider) trials
    body = {
        "task_type": "summarize",
        "provider": provider,
        "model": "gpt-4o",
        "error": {"status_code": 503, "message": "The server is overloaded"},
    }
    producer = make_producer(settings)
    await producer.start()
    try:
        async with healer(settings) as first:
            asked = await first.post("/api/healing/advice", json=body, headers=auth("agent"))
            assert asked.status_code == 200, asked.text
            answer = asked.json()
            healed = llm_call(
                "agent-1",
                provider=provider,
                model="gpt-4o",
                remedy={"advice_id": answer["advice_id"]},
            )
            await producer.send_and_wait(
                AGENT_COST.name, json.dumps(healed).encode(), key=b"agent-1"
            )
            learner = first.app.state.outcomes.ledger.learner  # type: ignore[attr-defined]

            def trials() -> list[tuple[str, int, int]]:
                return [
                    (action.value, t.healed, t.failed)
                    for (_, p, action), t in learner.trials.items()
                    if p == provider
                ]

            await wait_until(lambda: trials(), 30, "the outcome reached the learner")
            assert trials() == [(answer["remedy"]["action"], 1, 0)]
            stats = (await first.get("/api/healing/stats", headers=auth())).json()
            overloaded = stats["kinds"]["overloaded"]
            assert overloaded["healed"] >= 1 and overloaded["mean_time_to_heal_ms"] is not None
            await first.app.state.outcomes.checkpoint()  # type: ignore[attr-defined]
        async with healer(settings) as restarted:
            ledger = restarted.app.state.outcomes.ledger  # type: ignore[attr-defined]
            restored = [
                (a.value, t.healed, t.failed)
                for (_, p, a), t in ledger.learner.trials.items()
                if p == provider
            ]
            assert restored == [(answer["remedy"]["action"], 1, 0)]  # counted once, not twice
    finally:
        await producer.stop()
