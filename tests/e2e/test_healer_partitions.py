"""The circuit breakers on the local stack with two healer instances (issue 14, item 1).

The stack's healer and a second instance split the outcome partitions; after ``kill -9`` of
the second, the first owns every partition, restores the killed one's breaker checkpoints and
counts every call exactly once: nothing lost, nothing twice.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import httpx
import pytest
from cli_stack import another_instance, finops, operator_token, stack_log_tails, url_of, wait_for
from support import llm_call

from finops.cli.stack.ports import free_port
from finops.common.circuits import circuit_key
from finops.common.partitions import partition_for
from finops.common.topics import PROVIDER_OUTCOMES

pytestmark = pytest.mark.e2e

MODELS = [f"gpt-4o-mini-{i}" for i in range(12)]


class Healer:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def owned(self) -> int:
        """How many outcome partitions it owns, as its /metrics says."""
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        found = re.search(r"^finops_healer_owned_partitions (\S+)$", text, re.MULTILINE)
        return int(float(found.group(1))) if found else 0

    def calls(self) -> dict[str, int]:
        """Calls counted per model, as the published breaker states say."""
        resp = httpx.get(f"{self.url}/api/healing/circuits", headers=self.headers, timeout=30)
        assert resp.status_code == 200, resp.text
        return {c["model"]: c["calls"] for c in resp.json()["circuits"] if c["model"] in MODELS}


def send(env: dict[str, str], token: str, events: list[dict[str, Any]]) -> None:
    resp = httpx.post(
        f"{url_of(env, 'ingest')}/api/events",
        json=events,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert resp.status_code == 202, resp.text


def successes(agent: str, per_model: int) -> list[dict[str, Any]]:
    return [llm_call(agent, model=m) for _ in range(per_model) for m in MODELS]


def test_the_survivor_of_a_killed_healer_counts_each_call_once(stack_env: dict[str, str]) -> None:
    # an hour's window: a breaker's published calls are every call it counted
    stack_env["FINOPS_BREAKER_WINDOW_S"] = "3600"
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr + stack_log_tails(stack_env)
    second_process = None
    try:
        agent, token = operator_token(stack_env)
        first = Healer(url_of(stack_env, "healer"), token)
        port = free_port()
        second_process = another_instance(stack_env, "healer", port)
        second = Healer(f"http://127.0.0.1:{port}", token)
        wait_for(second.ready, 120, "the second healer to be ready", stack_env)
        wait_for(
            lambda: first.owned() and second.owned() and first.owned() + second.owned() == 3,
            120,
            "the outcome partitions to split between the instances",
            stack_env,
        )
        partitions = {partition_for(circuit_key("openai", m), 3) for m in MODELS}
        assert partitions == set(range(PROVIDER_OUTCOMES.partitions))  # both own breakers

        sent = successes(agent, 20)
        send(stack_env, token, sent)
        for healer in (first, second):
            wait_for(
                lambda h=healer: h.calls() == dict.fromkeys(MODELS, 20),
                120,
                "20 calls counted per model",
                stack_env,
            )
        os.kill(second_process.pid, signal.SIGKILL)
        second_process.wait(timeout=30)
        more = successes(agent, 10)
        send(stack_env, token, more)
        wait_for(lambda: first.owned() == 3, 120, "the survivor to own every partition")
        wait_for(
            lambda: all(n >= 30 for n in first.calls().values()) and len(first.calls()) == 12,
            120,
            "30 calls counted per model",
            stack_env,
        )
        assert first.calls() == dict.fromkeys(MODELS, 30)
        assert len({e["id"] for e in sent + more}) == 30 * len(MODELS)
    finally:
        if second_process is not None and second_process.poll() is None:
            second_process.kill()
        finops("down", env=stack_env)
