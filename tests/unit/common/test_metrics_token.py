"""With FINOPS_METRICS_TOKEN set, GET /metrics answers only the scraper that carries it."""

from __future__ import annotations

import importlib

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from finops.common.error_handlers import install_error_handlers
from finops.common.metrics import install_metrics_endpoint
from finops.common.settings import CommonSettings

TOKEN = "m3tr1cs-scraper-token-0123456789"


def _metrics(token: str | None) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    install_metrics_endpoint(app, token)
    return TestClient(app)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"bearer{TOKEN}", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x"],
)
def test_metrics_refuse_a_request_without_the_token(authorization) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = _metrics(TOKEN).get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "not_authenticated"
    assert answer.json()["error"]["message"] == (
        "GET /metrics asks for the bearer token FINOPS_METRICS_TOKEN holds"
    )
    assert "finops_" not in answer.text


def test_metrics_answer_the_token_and_without_one_set_anyone() -> None:
    scraped = _metrics(TOKEN).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    lower = _metrics(TOKEN).get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    unguarded = _metrics(None).get("/metrics")
    for answer in (scraped, lower, unguarded):
        assert answer.status_code == 200
        assert "# TYPE finops_http_requests_total counter" in answer.text


def test_a_placeholder_metrics_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="refusing a placeholder secret"):
        CommonSettings(metrics_token="changeme")


@pytest.mark.parametrize(
    ("service", "settings_class"),
    [
        ("auth", "AuthSettings"),
        ("ingest", "IngestSettings"),
        ("optimizer", "OptimizerSettings"),
        ("healer", "HealerSettings"),
        ("experiments", "ExperimentsSettings"),
    ],
)
def test_every_service_asks_for_the_token_it_is_given(
    service, settings_class, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("FINOPS_METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("FINOPS_DATA_DIR", str(tmp_path))
    create_app = importlib.import_module(f"finops.{service}.app").create_app
    settings = getattr(importlib.import_module(f"finops.{service}.settings"), settings_class)
    client = TestClient(create_app(settings()))  # no lifespan: nothing is opened
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_token_read_from_a_file_loses_its_trailing_newline() -> None:
    assert CommonSettings(metrics_token=f"{TOKEN}\n").metrics_token == TOKEN
