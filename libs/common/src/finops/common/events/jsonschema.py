"""JSON Schemas of the event types, for ``GET /api/schemas`` and for ``docs/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finops.common.events.schemas import EVENT_TYPES, SCHEMA_VERSION

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(event_type: str) -> str:
    return f"urn:finops:event:{event_type}:v{SCHEMA_VERSION}"


def event_json_schemas() -> dict[str, dict[str, Any]]:
    """``{event type: JSON Schema}`` (validation mode, i.e. what clients may send)."""
    out: dict[str, dict[str, Any]] = {}
    for event_type, model in EVENT_TYPES.items():
        schema = model.model_json_schema(mode="validation")
        out[event_type] = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": schema_id(event_type),
            "x-schema-version": SCHEMA_VERSION,
            **schema,
        }
    return out


def write_json_schemas(out_dir: str | Path) -> list[Path]:
    """Write ``<event type>.v<N>.schema.json`` files; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for event_type, schema in event_json_schemas().items():
        path = out / f"{event_type}.v{SCHEMA_VERSION}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths
