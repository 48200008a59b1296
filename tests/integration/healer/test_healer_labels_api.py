"""``POST /api/healing/labels`` on real PostgreSQL, Redis and broker: labels teach the
classifier; bad input gets a 4xx with a code. (Restarts and a second instance: the other file.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from healer_helpers import auth, healer, kind_of, settings_for

from finops.common.provider_errors.taxonomy import ErrorKind

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def client(infra: Any, tmp_path_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with healer(settings_for(infra, tmp_path_factory.mktemp("healer"))) as http:
        yield http


async def test_labels_teach_the_classifier_unless_a_rule_decides(client: httpx.AsyncClient) -> None:
    quirk = f"gateway {uuid.uuid4().hex[:8]} swallowed the completion halfway"
    overruled = "prompt is too long: 3 tokens > 2 maximum"
    labels = [
        {"message": quirk, "kind": "server_error", "provider": "openai", "status": 400},
        {"message": overruled, "kind": "bad_request"},
    ]
    assert kind_of(client, quirk, 400) is ErrorKind.BAD_REQUEST  # the bare status, untaught
    taught = await client.post("/api/healing/labels", json=labels, headers=auth())
    assert taught.status_code == 201, taught.text
    body = taught.json()
    assert [(label["kind"], label["decided_by_rule"]) for label in body["labels"]] == [
        ("server_error", None),
        ("bad_request", "context_length_message"),
    ]
    assert body["labels"][1]["id"] == body["labels"][0]["id"] + 1
    assert kind_of(client, quirk, 400) is ErrorKind.SERVER_ERROR
    # A rule decides the second message whatever the label says.
    assert kind_of(client, overruled) is ErrorKind.CONTEXT_LENGTH_EXCEEDED


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"message": "m", "kind": "meltdown"}, 422, "unknown_kind"),
        ({"message": "", "kind": "auth"}, 422, "empty_message"),
        ({"message": "x" * 2001, "kind": "auth"}, 422, "message_too_long"),
        ([{"message": "m", "kind": "auth"}] * 101, 422, "too_many_labels"),
        ([{"message": "", "kind": "auth"}, {"message": "m"}], 422, "invalid_labels"),
    ],
)
async def test_bad_labels_get_a_4xx_with_a_code(
    client: httpx.AsyncClient, body: Any, status: int, code: str
) -> None:
    answer = await client.post("/api/healing/labels", json=body, headers=auth())
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert answer.json()["error"]["details"]


async def test_labels_need_a_token_with_optimizer_write(client: httpx.AsyncClient) -> None:
    label = {"message": "m", "kind": "auth"}
    anonymous = await client.post("/api/healing/labels", json=label)
    agent = await client.post("/api/healing/labels", json=label, headers=auth("agent"))
    broken = await client.post(
        "/api/healing/labels",
        content=b"{not json",
        headers={**auth(), "content-type": "application/json"},
    )
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "not_authenticated")
    assert (agent.status_code, agent.json()["error"]["code"]) == (403, "insufficient_scope")
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_json")
