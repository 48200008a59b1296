"""Partitioned learning on the local stack with two optimizer workers (issue 14, item 1).

The stack's optimizer and a second worker started beside it split the learning partitions;
each answers recommendations for every task type; after ``kill -9`` of the second, the first
owns every partition and counts exactly the distinct events sent: nothing lost, nothing twice.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx
import pytest
from cli_stack import another_instance, finops, operator_token, stack_log_tails, url_of, wait_for
from support import llm_call

from finops.cli.stack.ports import free_port
from finops.common.topics import OPTIMIZER_EVENTS

pytestmark = pytest.mark.e2e

TASK_TYPES = [f"task-{i}" for i in range(12)]
MODELS = {t: ("gpt-4o-mini" if i % 2 else "gpt-4o") for i, t in enumerate(TASK_TYPES)}
ALL_PARTITIONS = list(range(OPTIMIZER_EVENTS.partitions))
NANO = "gpt-4.1-nano|openai|default"


class Replica:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=30)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def owned(self) -> list[int] | None:
        """The partitions the worker owns; None for a 503 (on a loaded machine the token check
        against Redis or auth's keys can time out: ``dependency_unavailable``)."""
        resp = self.get("/api/partitions")
        if resp.status_code == 503:
            return None
        assert resp.status_code == 200, resp.text
        return list(resp.json()["owned"])

    def events(self) -> int:
        return int(self.get("/api/stats/summary").json()["events"])


def send(env: dict[str, str], token: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 200):
        resp = httpx.post(
            f"{url_of(env, 'ingest')}/api/events",
            json=events[start : start + 200],
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert resp.status_code == 202, resp.text


def calls(agent: str, n: int) -> list[dict[str, Any]]:
    return [
        llm_call(
            agent,
            task_type=TASK_TYPES[i % len(TASK_TYPES)],
            model=MODELS[TASK_TYPES[i % len(TASK_TYPES)]],
        )
        for i in range(n)
    ]


def test_two_workers_split_the_partitions_and_the_survivor_of_a_kill_counts_each_event_once(
    stack_env: dict[str, str],
) -> None:
    stack_env["FINOPS_PARTITIONED_LEARNING"] = "true"
    up = finops("up", "--detach", env=stack_env)
    assert up.returncode == 0, up.stdout + up.stderr + stack_log_tails(stack_env)
    worker = None
    try:
        agent, token = operator_token(stack_env)
        first = Replica(url_of(stack_env, "optimizer"), token)
        port = free_port()
        worker = another_instance(stack_env, "optimizer", port)
        second = Replica(f"http://127.0.0.1:{port}", token)
        wait_for(second.ready, 120, "the second worker to be ready", stack_env)

        def split() -> tuple[list[int], list[int]] | None:
            a, b = first.owned(), second.owned()
            return (a, b) if a and b and sorted(a + b) == ALL_PARTITIONS else None

        a, b = wait_for(split, 120, "the partitions to split between the workers", stack_env)
        assert not set(a) & set(b)

        sent = calls(agent, 600)
        send(stack_env, token, sent)
        for replica in (first, second):
            wait_for(lambda r=replica: r.events() >= 600, 120, "600 events counted", stack_env)
            assert replica.events() == 600
            for task_type in TASK_TYPES:
                resp = replica.get("/api/recommendations", task_type=task_type, seed=1)
                assert resp.status_code == 200, resp.text
                assert resp.json()["model"] == MODELS[task_type]
            tasks = replica.get("/api/tasks").json()["tasks"]
            assert sorted(tasks) == sorted(TASK_TYPES)

        offered = httpx.post(
            f"{first.url}/api/catalog",
            json={"model": "gpt-4.1-nano", "provider": "openai"},
            headers=first.headers,
            timeout=30,
        )
        assert offered.status_code == 201, offered.text
        wait_for(
            lambda: NANO in {a["arm"] for a in second.get("/api/catalog").json()["arms"]},
            30,
            "the other replica to show the arm offered through the first",
        )

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        more = calls(agent, 300)
        send(stack_env, token, more)
        wait_for(
            lambda: first.owned() == ALL_PARTITIONS, 120, "the survivor to own every partition"
        )
        wait_for(lambda: first.events() >= 900, 120, "900 events counted", stack_env)
        summary = first.get("/api/stats/summary").json()
        assert summary["events"] == len({e["id"] for e in sent + more}) == 900
        assert summary["fleet"]["calls"] == 900
        by_task = {
            row["key"]: row["calls"] for row in first.get("/api/stats/task_type").json()["totals"]
        }
        assert by_task == {t: 75 for t in TASK_TYPES}
        assert NANO in {a["arm"] for a in first.get("/api/catalog").json()["arms"]}
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        finops("down", env=stack_env)
