"""Outcomes on the real broker teach the healer's learner and feed its stats, and both survive
a restart (one healer app at a time: two Faust apps alive in one process can hang)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import pytest
from healer_helpers import auth, healer, settings_for
from support import llm_call, wait_until

from finops.common.events import price_call
from finops.common.kafka import make_producer
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.common.topics import AGENT_COST, HEALING

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


async def test_a_healing_call_read_before_its_advice_costs_its_fallback_across_a_restart(
    infra: Any, tmp_path: Any
) -> None:
    """The intake reads three topics side by side: a fallback call (gpt-4o-mini) may be read
    before the advice of its chain (gpt-4o), after a restart's replay say. Its extra cost was
    taken as nothing (the first model unknown yet); it is priced once the advice arrives, also
    when a checkpoint and a restart came in between."""
    settings = settings_for(infra, tmp_path).model_copy(
        update={
            "effectiveness_checkpoint_name": f"healer-early-{uuid.uuid4().hex[:8]}",
            "effectiveness_checkpoint_interval_s": 0.2,
        }
    )
    advice_id = str(uuid.uuid4())
    usage = {"input_tokens": 12_000, "output_tokens": 3_000}
    call = llm_call(
        "agent-early",
        provider="openai",
        model="gpt-4o-mini",
        usage=usage,
        cost_usd=0.0036,
        remedy={"advice_id": advice_id},
    )
    baseline = price_call("openai", "gpt-4o", usage, datetime.fromisoformat(call["time"]))
    assert baseline.total_usd is not None
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(AGENT_COST.name, json.dumps(call).encode(), key=b"a")
        async with healer(settings) as first:
            intake = first.app.state.outcomes  # type: ignore[attr-defined]
            await wait_until(lambda: advice_id in intake.ledger.waiting, 30, "the call read")
            await intake.checkpoint()
        async with healer(settings) as restarted:
            intake = restarted.app.state.outcomes  # type: ignore[attr-defined]
            await wait_until(lambda: advice_id in intake.ledger.waiting, 30, "the call restored")

            def kind() -> Any:
                return intake.ledger.kinds.get(ErrorKind.QUOTA_EXHAUSTED)

            before = kind().extra_cost_usd if kind() else 0.0
            healed_before = kind().healed if kind() else 0
            advice = {
                "advice_id": advice_id,
                "kind": "quota_exhausted",
                "provider": "openai",
                "model": "gpt-4o",
                "remedy": {"action": "fallback"},
                "time": call["time"],
                "follows": None,
            }
            await producer.send_and_wait(HEALING.name, json.dumps(advice).encode(), key=b"a")
            # this call's outcome applied (the topics are the suite's: others may be there)
            await wait_until(
                lambda: advice_id not in intake.ledger.waiting and kind().healed > healed_before,
                30,
                "healed",
            )
            extra = kind().extra_cost_usd - before
    finally:
        await producer.stop()
    assert extra == pytest.approx(0.0036 - float(baseline.total_usd))
    assert extra < 0  # the fallback was the cheaper model
