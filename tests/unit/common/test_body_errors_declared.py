"""Every endpoint that reads a JSON body declares what any such body may get: 400
``invalid_json`` (also for one that is not UTF-8 text) and 413 ``payload_too_large``.  The
answers themselves:
``tests/unit/common/test_invalid_json_answers.py``,
``tests/unit/optimizer/test_optimizer_api_input.py`` and
``tests/unit/experiments/test_experiments_api_errors.py``."""

from __future__ import annotations

from typing import Any

import pytest

from finops.auth.app import create_app as auth_app
from finops.common.api_errors import EXTENSION
from finops.experiments.app import create_app as experiments_app
from finops.healer.app import create_app as healer_app
from finops.ingest.app import create_app as ingest_app
from finops.optimizer.app import create_app as optimizer_app

FACTORIES = {
    "auth": auth_app,
    "ingest": ingest_app,
    "optimizer": optimizer_app,
    "healer": healer_app,
    "experiments": experiments_app,
}
BODY_CODES = {(400, "invalid_json"), (413, "payload_too_large")}


def _json_body_endpoints(openapi: dict[str, Any]) -> dict[str, set[tuple[int, str]]]:
    out = {}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            out[f"{method.upper()} {path}"] = {
                (int(status), item["code"])
                for status, answer in operation.get("responses", {}).items()
                for item in answer.get(EXTENSION, [])
            }
    return out


@pytest.mark.parametrize("service", FACTORIES)
def test_every_json_body_endpoint_declares_the_body_errors(service: str) -> None:
    endpoints = _json_body_endpoints(FACTORIES[service]().openapi())
    assert endpoints, f"{service} has no endpoint with a JSON body"
    missing = {e: sorted(BODY_CODES - codes) for e, codes in endpoints.items()}
    assert {e: m for e, m in missing.items() if m} == {}


@pytest.mark.parametrize("service", FACTORIES)
def test_an_endpoint_without_a_body_declares_no_body_errors(service: str) -> None:
    """A 400 or 413 declared on an endpoint that reads no body is an answer it never gives."""
    bodyless = {}
    for path, operations in FACTORIES[service]().openapi()["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                continue
            bodyless[f"{method.upper()} {path}"] = sorted(
                (int(status), item["code"])
                for status, answer in operation.get("responses", {}).items()
                for item in answer.get(EXTENSION, [])
                if int(status) in (400, 413, 415)
            )
    assert {e: codes for e, codes in bodyless.items() if codes} == {}
