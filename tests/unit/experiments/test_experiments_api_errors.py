"""Every error the experiments' endpoints declare is one they answer, and every one they answer
is declared.

The API runs on an in-memory repository (or one whose database is down); tokens are verified
for real (RS256) against a blocklist that holds nothing (or whose Redis is down).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from support import TokenFactory

from finops.common.auth import TokenVerifier, install_verifier
from finops.common.http import create_service_app
from finops.common.settings import CommonSettings
from finops.experiments.adapters.repository import Experiment
from finops.experiments.api.routes import router
from finops.experiments.domain.definition import (
    Definition,
    ExperimentNotFound,
    NameTaken,
    build_definition,
    transition,
)

BODY: dict[str, Any] = {
    "name": "e",
    "task_type": "known",
    "variants": [
        {"name": "A", "model": "m", "provider": "p"},
        {"name": "B", "model": "m", "provider": "p"},
    ],
}
DEFINITION = build_definition(**BODY, known_task_types={"known"})


class Blocklist:
    def __init__(self) -> None:
        self.down = False

    async def mget(self, keys: list[str]) -> list[None]:
        if self.down:
            raise RedisConnectionError("Redis is down")
        return [None] * len(keys)


class Repository:
    """``draft`` is a draft, ``decided`` a decided experiment; no other id exists; every name
    is taken."""

    def __init__(self) -> None:
        self.down = False

    def _answer(self) -> None:
        if self.down:
            raise ConnectionRefusedError("PostgreSQL is down")

    def _experiment(self, experiment_id: str) -> Experiment:
        if experiment_id not in ("draft", "decided"):
            raise ExperimentNotFound(f"no experiment {experiment_id!r}")
        at = datetime(2026, 12, 1, tzinfo=UTC)
        return Experiment(
            experiment_id, DEFINITION, experiment_id, "s", "ops", at, None, None, None
        )

    async def task_type_known(self, task_type: str) -> bool:
        self._answer()
        return task_type == "known"

    async def create(self, definition: Definition, actor: str, salt: str | None = None) -> Any:
        self._answer()
        raise NameTaken(f"an experiment named {definition.name!r} exists")

    async def get(self, experiment_id: str) -> Experiment:
        self._answer()
        return self._experiment(experiment_id)

    async def all(self, status: str | None = None) -> list[Experiment]:
        self._answer()
        return []

    async def audit(self, experiment_id: str) -> list[dict[str, Any]]:
        self._answer()
        return []

    async def apply(self, experiment_id: str, action: str, actor: str) -> Experiment:
        experiment = await self.get(experiment_id)
        transition(action, experiment.status)
        raise AssertionError("only refused transitions are tried here")


class Intake:
    def __init__(self) -> None:
        self.known: dict[str, Experiment] = {}


TOKENS = TokenFactory(CommonSettings())
OPERATOR = {"Authorization": f"Bearer {TOKENS.token('ops', role='operator')}"}
JSON = {**OPERATOR, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    settings = CommonSettings(service_name="experiments")
    app = create_service_app(settings, title="experiments", description="test")
    app.include_router(router)
    app.state.experiments = Repository()
    app.state.intake = Intake()
    install_verifier(app, TokenVerifier(settings, Blocklist(), TOKENS.keys))
    return app


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _body(**changes: Any) -> dict[str, Any]:
    return {"json": {**BODY, **changes}, "headers": OPERATOR}


#: (method, path): a request that gets as far as the repository, then requests that meet
#: the endpoint's own errors (the operator's token unless they say otherwise)
Request = tuple[str, dict[str, Any]]
ENDPOINTS: dict[tuple[str, str], tuple[Request, list[Request]]] = {
    ("GET", "/api/experiments"): (
        ("/api/experiments", {}),
        [("/api/experiments?status=x", {})],
    ),
    ("POST", "/api/experiments"): (
        ("/api/experiments", _body()),
        [
            ("/api/experiments", {"content": b"{x", "headers": JSON}),
            ("/api/experiments", {"content": b"{}", "headers": {"Content-Type": "text/plain"}}),
            ("/api/experiments", {"content": b'{"name": "\xff"}', "headers": JSON}),
            ("/api/experiments", {"content": b" " * (1024 * 1024 + 1), "headers": JSON}),
            ("/api/experiments", _body()),  # every name is taken
            ("/api/experiments", _body(task_type="unseen")),
            ("/api/experiments", _body(variants=BODY["variants"][:1])),
            ("/api/experiments", _body(variants=[BODY["variants"][0]] * 2)),
            (
                "/api/experiments",
                _body(variants=[{**BODY["variants"][0], "weight": 0.5}, BODY["variants"][1]]),
            ),
            ("/api/experiments", _body(alpha=0.9)),
            ("/api/experiments", _body(unknown=1)),
        ],
    ),
    ("GET", "/api/experiments/{experiment_id}"): (
        ("/api/experiments/draft", {}),
        [("/api/experiments/nope", {}), ("/api/experiments/a%00b", {})],
    ),
    ("POST", "/api/experiments/{experiment_id}/start"): (
        ("/api/experiments/draft/start", {}),
        [
            ("/api/experiments/nope/start", {}),
            ("/api/experiments/a%00b/start", {}),
            ("/api/experiments/decided/start", {}),
        ],
    ),
    ("POST", "/api/experiments/{experiment_id}/stop"): (
        ("/api/experiments/draft/stop", {}),
        [
            ("/api/experiments/nope/stop", {}),
            ("/api/experiments/a%00b/stop", {}),
            ("/api/experiments/decided/stop", {}),
        ],
    ),
    ("GET", "/api/experiments/{experiment_id}/assignment"): (
        ("/api/experiments/draft/assignment?unit=u", {}),
        [
            ("/api/experiments/nope/assignment?unit=u", {}),
            ("/api/experiments/a%00b/assignment?unit=u", {}),
            ("/api/experiments/draft/assignment?unit=u", {}),  # a draft is not running
            ("/api/experiments/draft/assignment", {}),
        ],
    ),
    ("GET", "/api/experiments/{experiment_id}/results"): (
        ("/api/experiments/draft/results", {}),
        [("/api/experiments/nope/results", {}), ("/api/experiments/a%00b/results", {})],
    ),
}


def _declared(app: FastAPI, method: str, path: str) -> set[tuple[int, str]]:
    answers = app.openapi()["paths"][path][method.lower()]["responses"]
    return {(int(s), row["code"]) for s, a in answers.items() for row in a.get("x-error-codes", [])}


def _code(response: Any) -> tuple[int, str]:
    assert response.status_code >= 400, response.text
    return response.status_code, response.json()["error"]["code"]


def test_every_endpoint_is_tried() -> None:
    routes = {
        (m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods or ()
    }
    assert routes == set(ENDPOINTS)


@pytest.mark.parametrize(("method", "path"), list(ENDPOINTS), ids=[" ".join(e) for e in ENDPOINTS])
def test_an_endpoint_answers_exactly_the_errors_it_declares(
    app: FastAPI, client: TestClient, method: str, path: str
) -> None:
    (url, kwargs), own = ENDPOINTS[(method, path)]

    def send(
        url: str, kwargs: dict[str, Any], token: str | None = OPERATOR["Authorization"]
    ) -> tuple[int, str]:
        headers = {**kwargs.get("headers", {}), "Authorization": token or ""}
        if token is None:
            del headers["Authorization"]
        return _code(client.request(method, url, **{**kwargs, "headers": headers}))

    answered = {send(u, k) for u, k in own}
    answered.add(send(url, kwargs, token=None))
    answered.add(send(url, kwargs, token="Bearer not.a.token"))
    answered.add(send(url, kwargs, token=f"Bearer {TOKENS.token('x', scopes=[])}"))
    for dependency in (app.state.experiments, app.state.token_verifier.redis):
        dependency.down = True
        try:
            assert send(url, kwargs) == (503, "dependency_unavailable")
        finally:
            dependency.down = False
    assert answered | {(503, "dependency_unavailable")} == _declared(app, method, path)


def test_a_unit_holding_a_nul_is_422_invalid_text(app: FastAPI, client: TestClient) -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    running = Experiment("live", DEFINITION, "running", "s", "ops", at, None, None, None)
    app.state.intake.known["live"] = running
    try:
        url = "/api/experiments/live/assignment"
        refused = client.get(url, params={"unit": "user\x007"}, headers=OPERATOR)
        answered = client.get(url, params={"unit": "user7"}, headers=OPERATOR)
    finally:
        del app.state.intake.known["live"]
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "validation_error"
    assert refused.json()["error"]["details"] == [
        {
            "field": "query.unit",
            "message": "the value holds a NUL character",
            "type": "invalid_text",
        }
    ]
    assert answered.status_code == 200, answered.text
    assert answered.json()["variant"] in {"A", "B"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": " lead"}, "name"),
        ({"name": "cheaper\nsummaries"}, "name"),
        ({"name": "a\u202eb"}, "name"),
        (
            {"variants": [{**BODY["variants"][0], "name": "A\x1b[31m"}, BODY["variants"][1]]},
            "variants.0.name",
        ),
    ],
    ids=["blank", "leading_space", "line_break", "bidi_override", "variant_escape"],
)
def test_a_name_that_is_blank_padded_or_not_printable_is_422(
    client: TestClient, changes: dict[str, Any], field: str
) -> None:
    # "   " was an experiment's name, " lead" a second "lead", and a line break in a name
    # split finops tail's line and the optimizer's reason for a promoted winner
    response = client.post(**{"url": "/api/experiments", **_body(**changes)})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [(d["field"], d["type"]) for d in error["details"]] == [(field, "invalid_label")]


def test_a_name_of_any_script_with_inner_spaces_is_a_label(client: TestClient) -> None:
    response = client.post(**{"url": "/api/experiments", **_body(name="résumés moins chers 😀")})
    assert response.json()["error"]["code"] != "validation_error", response.text


@pytest.mark.parametrize(
    "name",
    ["東京\u3000要約", "cheaper\u00a0summaries", "a\ue000b"],
    ids=["ideographic_space", "no_break_space", "private_use"],
)
def test_a_label_takes_every_character_an_event_name_takes(client: TestClient, name: str) -> None:
    # one rule for names: an ideographic or no-break space inside, as an event's
    # experiment.variant may hold (isprintable() refused them in a label alone)
    variants = [{**BODY["variants"][0], "name": name}, BODY["variants"][1]]
    response = client.post(**{"url": "/api/experiments", **_body(name=name, variants=variants)})
    assert response.json()["error"]["code"] != "validation_error", response.text


@pytest.mark.parametrize(
    ("changes", "field", "code_point"),
    [
        ({"name": "cheaper\u200bsummaries"}, "name", "U+200B (ZERO WIDTH SPACE)"),
        ({"task_type": "kno\u202ewn"}, "task_type", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        (
            {"variants": [{**BODY["variants"][0], "model": "m\ufeff"}, BODY["variants"][1]]},
            "variants.0.model",
            "U+FEFF (ZERO WIDTH NO-BREAK SPACE)",
        ),
        (
            {"variants": [BODY["variants"][0], {**BODY["variants"][1], "provider": "p\n"}]},
            "variants.1.provider",
            "U+000A",
        ),
    ],
    ids=["label_zero_width", "task_type_bidi", "model_bom", "provider_line_break"],
)
def test_a_name_holding_a_format_or_control_character_is_422_naming_its_code_point(
    client: TestClient, changes: dict[str, Any], field: str, code_point: str
) -> None:
    """A task type, model or provider holding one was taken: the experiment could never run,
    as ingest and the SDK refuse the name in its events (the SDK before the paid call)."""
    response = client.post(**{"url": "/api/experiments", **_body(**changes)})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    [detail] = error["details"]
    kind = "invalid_label" if field == "name" else "control_character"
    assert (detail["field"], detail["type"]) == (field, kind)
    assert detail["message"].endswith(f"; got {code_point}")
