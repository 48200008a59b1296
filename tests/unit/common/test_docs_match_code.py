"""The error-code tables in the docs are the ones the code declares, and the code sends them."""

from __future__ import annotations

from pathlib import Path

import pytest

from finops.common.api_errors import ApiError, responses
from finops.common.error_docs import BLOCK, regenerate, render
from finops.ingest.app import create_app as ingest_app
from finops.optimizer.app import create_app as optimizer_app

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_generated_error_tables_in_the_docs_are_current(path):
    text = path.read_text()
    assert regenerate(text) == text, f"{path.name} is stale: run `make docs`"


def test_every_service_with_an_api_has_its_generated_table():
    blocks = {m["spec"] for path in DOCS for m in BLOCK.finditer(path.read_text())}
    assert blocks == {
        "finops.auth.app:create_app summary",
        "finops.ingest.app:create_app POST /api/events",
        "finops.optimizer.app:create_app summary",
        "finops.optimizer.app:create_app",
        "finops.healer.app:create_app summary",
        "finops.healer.app:create_app GET /api/healing/circuits",
        "finops.healer.app:create_app POST /api/healing/advice",
        "finops.healer.app:create_app GET /api/healing/stats",
        "finops.experiments.app:create_app summary",
        "finops.experiments.app:create_app",
    }


def test_one_table_row_becomes_the_openapi_answer_and_the_docs_row():
    rows = (ApiError(404, "no_thing", "nothing here"), ApiError(404, "gone", "it left"))
    [(status, answer)] = responses(rows).items()
    assert status == 404
    assert answer["description"] == "`no_thing`: nothing here; `gone`: it left"
    openapi = {"paths": {"/x": {"get": {"responses": {"404": answer}}}}}
    assert render(openapi) == (
        "| status | code | when |\n|---|---|---|\n"
        "| 404 | `no_thing` | nothing here |\n| 404 | `gone` | it left |\n"
    )


def test_the_events_doc_says_what_ingest_sends():
    events_doc = (ROOT / "docs" / "events.md").read_text()
    assert "token_revoked" not in events_doc  # a revoked token gets invalid_token
    rows = [line for line in events_doc.splitlines() if line.startswith("| ")]
    [invalid] = [row for row in rows if "`invalid_events`" in row]
    assert invalid.startswith("| 422 |") and "not a batch" in invalid


def test_post_events_declares_its_request_body():
    operation = ingest_app().openapi()["paths"]["/api/events"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    array, wrapped = body["content"]["application/json"]["schema"]["oneOf"]
    assert (array["type"], array["maxItems"]) == ("array", 1000)
    event_types = [e["properties"]["type"]["const"] for e in array["items"]["oneOf"]]
    assert event_types == ["agent.llm_call", "agent.error"]
    assert wrapped["required"] == ["events"]


def test_the_optimizer_promises_no_arms_for_an_unknown_task():
    from finops.common.api_errors import http_answer
    from finops.optimizer.domain.engine import NoArms

    answer = optimizer_app().openapi()["paths"]["/api/recommendations"]["get"]["responses"]
    assert [c["code"] for c in answer["404"]["x-error-codes"]] == ["no_arms"]
    assert (NoArms.code, http_answer(NoArms()).status) == ("no_arms", 404)


def test_the_readme_layout_lists_only_folders_that_exist():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("libs/common/      finops.common") :].split("```")[0]
    folders = [line.split()[0] for line in layout.splitlines() if line[:1].strip()]
    assert folders[:3] == ["libs/common/", "libs/cli/", "libs/client/"]
    assert "deploy/" not in folders
    assert [
        f for f in folders if not (ROOT / f.rstrip("/").replace("<name>", "auth")).is_dir()
    ] == []


def test_the_readme_names_the_services_db_upgrade_migrates():
    from finops.common.migrations import services_with_migrations

    readme = (ROOT / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| `finops db upgrade")]
    assert services_with_migrations() == ["auth", "experiments", "optimizer", "healer"]
    assert "database schema: auth, experiments, optimizer and healer" in row


def test_the_readme_names_every_dimension_of_the_stats_endpoint():
    from typing import get_args

    from finops.optimizer.api.stats import Dimension

    readme = (ROOT / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if "`GET /api/stats/{dimension}" in line]
    assert get_args(Dimension) == ("fleet", "agent", "team", "task_type", "provider", "model")
    assert [d for d in get_args(Dimension) if d not in row] == []
    assert "`fleet`" in row


def test_the_healer_doc_names_every_field_of_the_healing_stats():
    from finops.healer.api.schemas import HealingStatsOut, KindStatsOut

    text = (ROOT / "docs" / "healer.md").read_text()
    section = text[text.index("## Learned effectiveness and stats") :].split("\n## ")[0]
    fields = [*HealingStatsOut.model_fields, *KindStatsOut.model_fields]
    assert "records_read" in fields
    assert [f for f in fields if f"`{f}`" not in section] == []
