"""The OpenAPI document of ingest says the batch limit the app runs with: a client generated
from it refused a batch that FINOPS_MAX_BATCH_EVENTS allows (the document said 1,000)."""

from __future__ import annotations

from typing import Any

from finops.ingest.app import create_app
from finops.ingest.settings import IngestSettings


def _max_items(app: Any) -> list[int]:
    body = app.openapi()["paths"]["/api/events"]["post"]["requestBody"]
    array, wrapped = body["content"]["application/json"]["schema"]["oneOf"]
    return [array["maxItems"], wrapped["properties"]["events"]["maxItems"]]


def test_the_openapi_batch_limit_is_the_apps_setting(tmp_path) -> None:
    larger = create_app(IngestSettings(data_dir=tmp_path, max_batch_events=2500))
    default = create_app(IngestSettings(data_dir=tmp_path))
    assert _max_items(larger) == [2500, 2500]
    assert _max_items(default) == [1000, 1000]  # one app's limit is not another's
    description = larger.openapi()["paths"]["/api/events"]["post"]["description"]
    assert "`FINOPS_MAX_BATCH_EVENTS` events (1,000 by default)" in description
