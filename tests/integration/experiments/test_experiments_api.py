"""The experiments API on real PostgreSQL: definitions, life cycle, audit, assignment, 4xx."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def api(module_lab):
    """One service for the module: every test makes its own task type and experiment names,
    so none needs a fresh one (each start waits for two consumer-group joins)."""
    async with module_lab.service() as client:
        client.operator = module_lab.operator
        client.agent = module_lab.agent
        yield client


def definition(task_type: str, **overrides) -> dict:
    body = {
        "name": f"exp-{uuid.uuid4().hex[:8]}",
        "task_type": task_type,
        "variants": [
            {"name": "A", "model": "gpt-4o", "provider": "openai", "weight": 0.5},
            {"name": "B", "model": "gpt-4o-mini", "provider": "openai", "weight": 0.5},
        ],
    }
    body.update(overrides)
    return body


async def known_task_type(api) -> str:
    task_type = f"summarize-{uuid.uuid4().hex[:6]}"
    await api.app.state.experiments.record_task_types([task_type])
    return task_type


async def test_an_experiment_is_created_started_and_stopped_with_an_audit_trail(api) -> None:
    task_type = await known_task_type(api)
    created = await api.post("/api/experiments", json=definition(task_type), headers=api.operator)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "draft" and body["task_type"] == task_type
    assert body["alpha"] == 0.05 and body["metric"] == "cost_per_success"
    assert body["guardrails"] == {
        "min_quality_ratio": 0.95,
        "max_p95_latency_ms": None,
        "max_success_rate_drop": 0.05,
    }
    assert [v["weight"] for v in body["variants"]] == [0.5, 0.5]
    eid = body["id"]
    listed = await api.get("/api/experiments", params={"status": "draft"}, headers=api.operator)
    assert eid in [e["id"] for e in listed.json()["experiments"]]
    started = await api.post(f"/api/experiments/{eid}/start", headers=api.operator)
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert started.json()["started_at"] is not None
    stopped = await api.post(f"/api/experiments/{eid}/stop", headers=api.operator)
    assert stopped.json()["status"] == "stopped"
    again = await api.post(f"/api/experiments/{eid}/start", headers=api.operator)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_status_transition"
    detail = (await api.get(f"/api/experiments/{eid}", headers=api.operator)).json()
    assert [(a["action"], a["actor"]) for a in detail["audit"]] == [
        ("create", "ops-ann"),
        ("start", "ops-ann"),
        ("stop", "ops-ann"),
    ]
    assert detail["audit"][1]["details"] == {"from": "draft", "to": "running"}


async def test_a_guardrail_given_as_null_is_off_and_stays_off_once_stored(api) -> None:
    # left out, max_success_rate_drop is on at 0.05; null turns it off, and the definition
    # read back from PostgreSQL keeps it off (not the default)
    task_type = await known_task_type(api)
    body = definition(task_type, guardrails={"max_success_rate_drop": None})
    created = await api.post("/api/experiments", json=body, headers=api.operator)
    assert created.status_code == 201, created.text
    assert created.json()["guardrails"]["max_success_rate_drop"] is None
    read = await api.get(f"/api/experiments/{created.json()['id']}", headers=api.operator)
    assert read.json()["guardrails"] == {
        "min_quality_ratio": 0.95,
        "max_p95_latency_ms": None,
        "max_success_rate_drop": None,
    }


@pytest.mark.parametrize(
    ("overrides", "code", "fields"),
    [
        ({"task_type": "never-seen-task"}, "unknown_task_type", ["task_type"]),
        (
            {"variants": [{"name": "A", "model": "m", "provider": "p"}]},
            "too_few_variants",
            ["variants"],
        ),
        (
            {
                "variants": [
                    {"name": "A", "model": "m", "provider": "p"},
                    {"name": "B", "model": "n", "provider": "p"},
                    {"name": "A", "model": "n", "provider": "p"},
                ]
            },
            "duplicate_variant_names",
            ["variants.2.name"],
        ),
        (
            {
                "variants": [
                    {"name": "A", "model": "m", "provider": "p", "weight": 0.3},
                    {"name": "B", "model": "n", "provider": "p", "weight": 0.3},
                ]
            },
            "weights_not_summing_to_one",
            ["variants.0.weight", "variants.1.weight"],
        ),
        (
            {
                "variants": [
                    {"name": "A", "model": "m", "provider": "p", "weight": 1.5},
                    {"name": "B", "model": "n", "provider": "p", "weight": -0.5},
                ]
            },
            "weights_not_summing_to_one",
            ["variants.1.weight"],
        ),
        (
            {
                "variants": [
                    {"name": "A", "model": "m", "provider": "p", "weight": 1.0},
                    {"name": "B", "model": "n", "provider": "p"},
                ]
            },
            "weights_not_summing_to_one",
            ["variants.1.weight"],
        ),
        ({"alpha": 0.0}, "alpha_out_of_range", ["alpha"]),
        ({"alpha": 0.6}, "alpha_out_of_range", ["alpha"]),
        ({"allocation": "round-robin"}, "validation_error", ["allocation"]),
    ],
)
async def test_a_bad_definition_is_refused_with_its_code_naming_the_field(
    api, overrides, code, fields
) -> None:
    # an operator's tool shows the error beside the field, as with validation_error: the
    # definition's own rules answered details null, naming none
    task_type = await known_task_type(api)
    body = {**definition(task_type), **overrides}
    response = await api.post("/api/experiments", json=body, headers=api.operator)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert [d["field"] for d in error["details"]] == fields
    if code != "validation_error":
        assert {d["type"] for d in error["details"]} == {code}
        assert {d["message"] for d in error["details"]} == {error["message"]}


async def test_names_are_unique_and_decided_or_draft_experiments_refuse_start_and_assign(
    api,
) -> None:
    task_type = await known_task_type(api)
    body = definition(task_type)
    eid = (await api.post("/api/experiments", json=body, headers=api.operator)).json()["id"]
    duplicate = await api.post("/api/experiments", json=body, headers=api.operator)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "experiment_name_taken"
    assert [d["field"] for d in duplicate.json()["error"]["details"]] == ["name"]
    draft_assign = await api.get(
        f"/api/experiments/{eid}/assignment", params={"unit": "u1"}, headers=api.agent
    )
    assert draft_assign.status_code == 409
    assert draft_assign.json()["error"]["code"] == "experiment_not_running"
    await api.post(f"/api/experiments/{eid}/start", headers=api.operator)
    repo = api.app.state.experiments
    assert await repo.conclude(eid, "decided", {"winner": "B", "reason": "test"}, "analysis")
    start_decided = await api.post(f"/api/experiments/{eid}/start", headers=api.operator)
    assert start_decided.status_code == 409
    assert start_decided.json()["error"]["code"] == "invalid_status_transition"
    missing = await api.get(f"/api/experiments/{uuid.uuid4()}", headers=api.operator)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "experiment_not_found"


async def test_assignment_is_sticky_follows_the_weights_and_needs_its_scope(api) -> None:
    task_type = await known_task_type(api)
    body = definition(
        task_type,
        variants=[
            {"name": "A", "model": "gpt-4o", "provider": "openai", "weight": 0.25},
            {
                "name": "B",
                "model": "gpt-4o-mini",
                "provider": "openai",
                "weight": 0.75,
                "config": {"temperature": 0.2},
            },
        ],
    )
    forbidden = await api.post("/api/experiments", json=body, headers=api.agent)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "insufficient_scope"
    eid = (await api.post("/api/experiments", json=body, headers=api.operator)).json()["id"]
    await api.post(f"/api/experiments/{eid}/start", headers=api.operator)
    picks: Counter[str] = Counter()
    answers = {}
    for i in range(400):
        answer = (
            await api.get(
                f"/api/experiments/{eid}/assignment",
                params={"unit": f"user-{i}"},
                headers=api.agent,
            )
        ).json()
        answers[answer["variant"]] = answer
        picks[answer["variant"]] += 1
        assert answer["propensity"] == (0.25 if answer["variant"] == "A" else 0.75)
    assert 0.18 < picks["A"] / 400 < 0.32
    first = await api.get(
        f"/api/experiments/{eid}/assignment", params={"unit": "user-7"}, headers=api.agent
    )
    for _ in range(5):
        again = await api.get(
            f"/api/experiments/{eid}/assignment", params={"unit": "user-7"}, headers=api.agent
        )
        assert again.json() == first.json()
    assert answers["B"]["config"] == {"temperature": 0.2}
    assert answers["B"]["model"] == "gpt-4o-mini" and answers["A"]["model"] == "gpt-4o"
    assert first.json()["experiment_id"] == eid


async def test_experiments_given_the_same_salt_assign_every_unit_alike(api) -> None:
    async def variants(body: dict) -> list[str]:
        created = await api.post("/api/experiments", json=body, headers=api.operator)
        assert created.status_code == 201, created.text
        eid = created.json()["id"]
        await api.post(f"/api/experiments/{eid}/start", headers=api.operator)
        return [
            (
                await api.get(
                    f"/api/experiments/{eid}/assignment",
                    params={"unit": f"task-{i}"},
                    headers=api.agent,
                )
            ).json()["variant"]
            for i in range(64)
        ]

    task_type = await known_task_type(api)
    salted = await variants(definition(task_type, salt="seed-42"))
    assert set(salted) == {"A", "B"}
    assert await variants(definition(task_type, salt="seed-42")) == salted
    # a random salt of its own: 64 units landing alike by chance is a 2^-64 event
    assert await variants(definition(task_type)) != salted
    for bad in ("", "s" * 129, 42):
        refused = await api.post(
            "/api/experiments", json=definition(task_type, salt=bad), headers=api.operator
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "validation_error"


async def test_a_bandit_starts_from_the_declared_weights(api) -> None:
    task_type = await known_task_type(api)
    body = definition(task_type, allocation="bandit")
    eid = (await api.post("/api/experiments", json=body, headers=api.operator)).json()["id"]
    await api.post(f"/api/experiments/{eid}/start", headers=api.operator)
    answer = await api.get(
        f"/api/experiments/{eid}/assignment", params={"unit": "u"}, headers=api.agent
    )
    assert answer.status_code == 200 and answer.json()["propensity"] == 0.5


async def test_the_counts_of_an_operators_stop_are_recorded_once_and_only_for_a_stop(api) -> None:
    """What the analysis counted when it saw an operator's stop is kept with the experiment
    (a replay counts its calls up to it); a running or decided experiment has none, and the
    first counts recorded stand."""
    task_type = await known_task_type(api)
    repo = api.app.state.experiments
    stopped, decided = [
        (
            await api.post("/api/experiments", json=definition(task_type), headers=api.operator)
        ).json()["id"]
        for _ in range(2)
    ]
    for eid in (stopped, decided):
        await api.post(f"/api/experiments/{eid}/start", headers=api.operator)
    assert not await repo.record_stop_counts(stopped, [3, 4])  # running: no stop yet
    await api.post(f"/api/experiments/{stopped}/stop", headers=api.operator)
    assert await repo.record_stop_counts(stopped, [3, 4])
    assert not await repo.record_stop_counts(stopped, [9, 9])
    assert (await repo.get(stopped)).stop_counts == [3, 4]
    assert await repo.conclude(decided, "stopped", {"winner": None, "reason": "t"}, "analysis")
    assert not await repo.record_stop_counts(decided, [1, 1])  # the analysis stopped it
    assert (await repo.get(decided)).stop_counts is None
