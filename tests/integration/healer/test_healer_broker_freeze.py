"""A healer rides out a broker that freezes (SIGSTOP) for longer than its producers' request
timeout: every loop still runs after SIGCONT, /readyz said why it was down meanwhile, errors
sent during the freeze are each counted once after it, and the breaker states on
finops.circuits.v1 are the healer's own.

Freezing the local broker for about ten seconds under a running stack ended the healer's
process ('the circuit breakers' stream loops failed (RequestTimedOutError)'). The broker here
is the test's own (``disk_stack``): the session's is shared with the other tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pytest
from circuit_lab import CircuitLab, agent_error
from healer_helpers import healer
from support import send_acknowledged

from finops.common.kafka import make_producer, read_topic

#: the healer's producers' request timeout here (FINOPS_KAFKA_REQUEST_TIMEOUT_MS, 15 s by
#: default), after which a send that is not idempotent fails with the broker's timeout
REQUEST_TIMEOUT_MS = 3000
#: longer than that request timeout: the healer's sends fail while the broker is frozen
FREEZE_S = 8.0
#: errors sent while the broker is frozen, on a breaker of their own (too few to open it)
DURING_FREEZE = 4


async def until(condition: Any, timeout_s: float, what: str, detail: Any = None) -> None:
    """Poll ``condition`` (a function, or a coroutine function) until it holds; a failure
    says ``detail()`` too, when given."""

    async def poll() -> None:
        while True:
            held = condition()
            if asyncio.iscoroutine(held):
                held = await held
            if held:
                return
            await asyncio.sleep(0.1)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))


@pytest.mark.timeout(300)
async def test_a_broker_frozen_past_the_request_timeout_is_ridden_out(
    disk_stack, disk_infra, tmp_path
):
    lab = CircuitLab(disk_infra, tmp_path)
    await lab.setup()
    # the errors sent during the freeze: a request timeout longer than the freeze, so the
    # broker takes them when it comes back (started, with the topic's metadata, before it)
    frozen_sender = make_producer(lab.kafka, request_timeout_ms=120_000)
    await frozen_sender.start()
    await frozen_sender.partitions_for(lab.errors.name)
    try:
        settings = lab.healer_settings(
            broker_outage_tolerance_s=120.0,
            broker_ack_wait_s=1.0,
            kafka_request_timeout_ms=REQUEST_TIMEOUT_MS,
        )
        async with healer(settings) as client:
            app: Any = client.app  # type: ignore[attr-defined]
            breakers = app.state.breakers
            await lab.fail("openai", "gpt-4o", 20, 500, "Internal server error")
            await until(
                lambda: (
                    (state := app.state.circuits.get("openai", "gpt-4o")) is not None
                    and state.state.value == "open"
                ),
                60,
                "the breaker to open",
            )
            applied = breakers.owners.outcomes_applied
            during = [
                agent_error(f"frozen-{i}", "anthropic", "claude-haiku-4-5", 500, "Internal error")
                for i in range(DURING_FREEZE)
            ]
            broker_pid = disk_stack.components["broker"].pid
            last_answer: dict[str, Any] = {}
            os.kill(broker_pid, signal.SIGSTOP)
            try:
                # the republish (every second here) meets the frozen broker: the wait starts.
                # A CI run beside other work (a loaded machine) saw 30 s run out: the failure
                # says what /readyz last answered.
                await until(
                    lambda: waiting(client, last_answer),
                    60,
                    "/readyz to say the healer waits",
                    detail=lambda: last_answer,
                )
                sending = asyncio.create_task(
                    send_acknowledged(frozen_sender, lab.errors.name, during)
                )
                await asyncio.sleep(FREEZE_S)  # the freeze itself, not a synchronisation
            finally:
                os.kill(broker_pid, signal.SIGCONT)
            await asyncio.wait_for(sending, 60)
            await until(lambda: ready(client), 120, "/readyz to say ready again")
            # each error sent during the freeze is counted, once (stage 1 forwarded it through
            # a broker that had just come back; a lost or doubled forward shows here)
            await until(
                lambda: breakers.owners.outcomes_applied >= applied + DURING_FREEZE,
                90,
                "the errors sent during the freeze to be counted",
            )
            for loop in (breakers.loops, app.state.outcome_loop, app.state.label_refresh):
                assert not loop.done(), loop
            # the freeze the healer waited through, as it measured it
            assert breakers.outage.longest_s >= FREEZE_S
            assert app.state.circuits.running
            # both stages count again: new successes close the breaker (half-opened meanwhile)
            assert breakers.owners.outcomes_applied == applied + DURING_FREEZE
            applied = breakers.owners.outcomes_applied
            await lab.succeed("openai", "gpt-4o", 5)
            await until(
                lambda: (
                    breakers.owners.outcomes_applied == applied + 5
                    and app.state.circuits.get("openai", "gpt-4o").state.value == "closed"
                ),
                90,
                "the successes to be counted and the breaker closed",
            )
            assert await ready(client)
            # what the topic says is what the owner holds (the latest record per breaker), once
            # the owner has published again on its own after the breaker's state was taken
            async with breakers.owners.lock:
                own = {
                    state.key: state.to_dict()
                    for shard in breakers.owners.shards.values()
                    for state in shard.board.snapshots()
                }
                taken = breakers.owners._last_republish
            await until(lambda: breakers.owners._last_republish > taken, 30, "a republish")
            topic: dict[str, Any] = {}
            # the owner republishes every second: the topic never goes quiet, so the read is
            # bounded (it returns what it read); the latest record per breaker is what counts
            async for record in read_topic(
                lab.kafka, lab.circuits.name, idle_s=1.5, timeout_s=10.0
            ):
                topic[record.key.decode()] = json.loads(record.value)
            assert own.keys() == topic.keys()
            assert "openai/gpt-4o" in own
            assert topic == own
    finally:
        await frozen_sender.stop()
        await lab.close()


async def waiting(client: Any, last_answer: dict[str, Any]) -> bool:
    """/readyz is down and its circuits check says the healer waits for the broker
    (``last_answer`` is given its status and checks)."""
    answer = await client.get("/readyz")
    last_answer.update(status=answer.status_code, checks=answer.json()["checks"])
    circuits = answer.json()["checks"]["circuits"]
    return answer.status_code == 503 and "waiting for the broker to take records" in circuits


async def ready(client: Any) -> bool:
    return bool((await client.get("/readyz")).status_code == 200)
