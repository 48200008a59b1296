"""Response bodies of the ingest API, so that OpenAPI documents every answer."""

from __future__ import annotations

from typing import Any

from finops.common.response_body import ResponseBody

#: ``GET /api/schemas``: the JSON Schema of each event type, by type name
EventSchemas = dict[str, dict[str, Any]]


class Accepted(ResponseBody):
    accepted: int
