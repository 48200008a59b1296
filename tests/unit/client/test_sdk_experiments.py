"""SDK and experiments: assign() asks the experiments service; record_call(experiment=…) tags."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from finops.client import AsyncFinOpsClient
from finops.client.errors import RequestRefused

ASSIGNMENT = {
    "experiment_id": "e1",
    "variant": "B",
    "model": "gpt-4o-mini",
    "provider": "openai",
    "config": {},
    "propensity": 0.5,
}


async def test_assign_retries_transient_faults_and_its_answer_tags_the_call() -> None:
    requests: list[httpx.Request] = []

    def services(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.host == "experiments":
            if len([r for r in requests if r.url.host == "experiments"]) == 1:
                return httpx.Response(503, headers={"Retry-After": "0"})
            return httpx.Response(200, json=ASSIGNMENT)
        return httpx.Response(202, json={"accepted": 1})

    c = AsyncFinOpsClient(
        ingest_url="http://ingest",
        experiments_url="http://experiments/",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(services),
        max_backoff_s=0.01,
    )
    answer = await c.assign("e1", "user-42")
    await c.record_call(
        task_type="qa",
        provider=answer["provider"],
        model=answer["model"],
        usage={"input_tokens": 10, "output_tokens": 2},
        latency_ms=100,
        experiment=answer,
    )
    await c.record_call(
        task_type="qa",
        provider="openai",
        model="gpt-4o",
        usage={"input_tokens": 10, "output_tokens": 2},
        latency_ms=100,
        experiment={"id": "e1", "variant": "A"},
    )
    await c.close()
    assigned = [r for r in requests if r.url.host == "experiments"]
    assert len(assigned) == 2
    assert assigned[-1].url.path == "/api/experiments/e1/assignment"
    assert dict(assigned[-1].url.params) == {"unit": "user-42"}
    assert assigned[-1].headers["authorization"] == "Bearer t"
    sent = [e for r in requests if r.url.host == "ingest" for e in json.loads(r.content)]
    assert [e["data"]["experiment"] for e in sent] == [
        {"id": "e1", "variant": "B"},
        {"id": "e1", "variant": "A"},
    ]


async def test_an_assignments_config_is_the_calls_unless_it_says_otherwise() -> None:
    # without it the experiment's calls were learned as the default config, and the winner
    # the optimizer pinned (model and config) had no data
    sent: list[dict] = []

    def ingest(request: httpx.Request) -> httpx.Response:
        sent.extend(json.loads(request.content))
        return httpx.Response(202, json={"accepted": 1})

    c = AsyncFinOpsClient(
        ingest_url="http://ingest", agent_id="bot", token="t",
        transport=httpx.MockTransport(ingest),
    )  # fmt: skip
    assignment = {**ASSIGNMENT, "config": {"temperature": 0.2}}
    call: dict[str, Any] = {"task_type": "qa", "provider": "openai", "model": "gpt-4o-mini",
            "usage": {"input_tokens": 10, "output_tokens": 2}, "latency_ms": 100}  # fmt: skip
    await c.record_call(**call, experiment=assignment)
    await c.record_call(**call, experiment=assignment, config={"temperature": 0.0})
    await c.record_call(**call, experiment=ASSIGNMENT)  # an empty config: none sent
    await c.close()
    assert [e["data"].get("config") for e in sent] == [
        {"temperature": 0.2},
        {"temperature": 0.0},
        None,
    ]


def experiments_client(
    experiments: Callable[[httpx.Request], httpx.Response],
) -> AsyncFinOpsClient:
    """A client whose requests the experiments service stub ``experiments`` answers."""
    return AsyncFinOpsClient(
        ingest_url="http://ingest",
        experiments_url="http://experiments",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(experiments),
    )


async def test_an_assignment_from_a_stopped_experiment_is_refused_at_once() -> None:
    requests: list[httpx.Request] = []

    def experiments(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        body = {"error": {"code": "experiment_not_running", "message": "e1 is stopped"}}
        return httpx.Response(409, json=body)

    c = experiments_client(experiments)
    with pytest.raises(RequestRefused) as refused:
        await c.assign("e1", "u")
    await c.close()
    assert refused.value.code == "experiment_not_running" and len(requests) == 1


@pytest.mark.parametrize("experiment_id", ["x?unit=other", "../healing/stats", "a/b", "é 1"])
async def test_assign_sends_the_experiment_id_as_one_path_segment(experiment_id: str) -> None:
    # an id holding "?", "/" or ".." reached another route or changed the query:
    # "x?unit=other" asked for unit "other/assignment" too
    requests: list[httpx.Request] = []

    def experiments(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=ASSIGNMENT)

    c = experiments_client(experiments)
    await c.assign(experiment_id, "user-42")
    await c.close()
    [request] = requests
    assert request.url.raw_path.decode().startswith("/api/experiments/")
    segments = request.url.raw_path.decode().split("?")[0].split("/")
    assert len(segments) == 5 and segments[4] == "assignment"
    assert unquote(segments[3]) == experiment_id
    assert request.url.params.multi_items() == [("unit", "user-42")]


async def test_a_refused_assignment_says_which_field_was_wrong() -> None:
    # assign(x, unit="") raised "422 validation_error: request is invalid" and nothing more
    def experiments(request: httpx.Request) -> httpx.Response:
        detail = {
            "field": "query.unit",
            "message": "String should have at least 1 character",
            "type": "string_too_short",
        }
        body = {
            "error": {
                "code": "validation_error",
                "message": "request is invalid",
                "details": [detail],
            }
        }
        return httpx.Response(422, json=body)

    c = experiments_client(experiments)
    with pytest.raises(RequestRefused) as refused:
        await c.assign("e1", "")
    await c.close()
    assert refused.value.code == "validation_error"
    assert str(refused.value).endswith(
        ": 422 validation_error: request is invalid"
        " (query.unit: String should have at least 1 character)"
    )
