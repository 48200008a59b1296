"""A service whose event intake dies of something its own retries do not cover ends its
process, and the stack starts it again: here the schemas of the experiments service, the
optimizer and the healer are taken back under the running stack, each to a revision without a
column that its event intake (the healer's: its circuit breakers' stream loops or its
outcome intake) reads or writes, and each service is ready again once the schemas are back at
head, without a `down` / `up`. One stack run for the three: a stack's start is what takes long."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path

import httpx
import pytest
from cli_stack import finops, stack_log_tails, url_of, wait_for
from support import llm_call, publish

from finops.common.settings import LOCAL_BROKER_ENV, CommonSettings
from finops.common.topics import AGENT_COST

pytestmark = pytest.mark.e2e

#: service -> the revision its schema is taken back to, and each loop that may then fail with
#: the error it fails with: experiments' intake reads experiment_audit.announced_at (exp0004)
#: between events; the optimizer's checkpoint writes optimizer_checkpoints.cluster_id
#: (opt0002); the healer's breaker checkpoints write healer_checkpoints.position (heal0004)
#: and its outcome intake's healer_checkpoints.segmented (heal0005), each on its first
#: checkpoint after an event: whichever comes first ends the process.
FAILING: dict[str, tuple[str, dict[str, str]]] = {
    "experiments": ("exp0003", {"the event intake": "column a.announced_at does not exist"}),
    "optimizer": (
        "opt0001",
        {
            "the event intake": (
                'column "cluster_id" of relation "optimizer_checkpoints" does not exist'
            )
        },
    ),
    "healer": (
        "heal0003",
        {
            "the circuit breakers' stream loops": (
                'column "position" of relation "healer_checkpoints" does not exist'
            ),
            "the outcome intake": (
                'column "segmented" of relation "healer_checkpoints" does not exist'
            ),
        },
    ),
}
ENDING = "ending the process so that it is started again"


def _said_of_a_schema_behind(ending: str, may_say: set[str]) -> bool:
    """One of ``may_say``, or a loop's query that met the downgrade itself: its transaction
    (several steps, several tables) and a query reading two of those tables can deadlock, and
    PostgreSQL then ends the query (a CI run saw the experiments' intake end so, once)."""
    loops = {said.partition(" failed (")[0] for said in may_say}
    return ending in may_say or any(
        ending.startswith(f"{loop} failed (DeadlockDetectedError: deadlock detected")
        and ending.endswith(ENDING)
        for loop in loops
    )


def restarts(env: dict[str, str], name: str) -> int:
    state = json.loads((Path(env["FINOPS_DATA_DIR"]) / "stack.json").read_text())
    return int(state["components"][name]["restarts"])


def restarted(env: dict[str, str], name: str) -> bool:
    return restarts(env, name) >= 1


def ready(env: dict[str, str], name: str) -> bool:
    try:
        return httpx.get(f"{url_of(env, name)}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def endings(env: dict[str, str], name: str) -> list[str]:
    """What the service's log says each time a loop failure ended its process."""
    said = []
    for line in (Path(env["FINOPS_DATA_DIR"]) / "logs" / f"{name}.log").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # not a record (or one the restarted process is still writing)
        if not isinstance(record, dict) or record.get("logger") != "finops.common.lifespan":
            continue
        if record.get("level") == "CRITICAL":
            said.append(str(record.get("message")))
    return said


def test_intakes_failing_on_a_schema_behind_restart_their_services_until_mended(stack_env):
    # the optimizer checkpoints after every event (default: every 30 s), so that its intake
    # meets the missing column as soon as an event arrives
    stack_env["FINOPS_CHECKPOINT_EVERY_EVENTS"] = "1"
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr + stack_log_tails(stack_env)
    try:
        for name in FAILING:
            assert restarts(stack_env, name) == 0, name
        for revision, _ in FAILING.values():
            back = finops("db", "downgrade", revision, env=stack_env)
            assert back.returncode == 0, back.stdout + back.stderr
        kafka = CommonSettings(
            kafka_bootstrap=f"127.0.0.1:{stack_env['FINOPS_KAFKA_PORT']}",
            **{k.removeprefix("FINOPS_").lower(): v for k, v in LOCAL_BROKER_ENV.items()},
        )
        # the optimizer's intake and the healer's breakers read them
        asyncio.run(publish(kafka, AGENT_COST.name, [llm_call("loops") for _ in range(5)]))
        for name in FAILING:
            wait_for(
                partial(restarted, stack_env, name), 90, f"{name} to end and be started", stack_env
            )
        for name, (_, loops) in FAILING.items():
            may_say = {
                f"{what} failed (UndefinedColumnError: {error}); {ENDING}"
                for what, error in loops.items()
            }
            said = set(endings(stack_env, name))
            assert said and all(_said_of_a_schema_behind(e, may_say) for e in said), (name, said)
        forward = finops("db", "upgrade", env=stack_env)
        assert forward.returncode == 0, forward.stdout + forward.stderr
        for name in FAILING:
            wait_for(partial(ready, stack_env, name), 120, f"{name} ready", stack_env)
        for other in ("ingest", "auth"):
            assert restarts(stack_env, other) == 0, other
    finally:
        down = finops("down", env=stack_env)
        assert down.returncode == 0, down.stdout + down.stderr
