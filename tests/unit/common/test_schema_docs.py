import json
from pathlib import Path

from finops.common.events import event_json_schemas

DOCS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def test_published_json_schemas_match_the_code():
    for event_type, schema in event_json_schemas().items():
        published = json.loads((DOCS / f"{event_type}.v1.schema.json").read_text())
        assert published == schema, f"docs/schemas is stale for {event_type}: regenerate it"
