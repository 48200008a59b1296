"""Base of the response models every service declares, so OpenAPI documents each answer.

The domain builds JSON-ready dicts; a response model describes one field by field, in the same
order. It forbids extra keys, so that a field the domain adds without a model fails the API
tests instead of vanishing from the answer. ``Real`` keeps an integer an integer (``float``
would turn ``0`` into ``0.0``), so the bytes sent are the domain's.

Routers that use response models set ``default_response_class=JSONResponse``: with a response
model, FastAPI's default is pydantic's own JSON encoder, which writes some floats differently
from ``json.dumps`` (``1e-05`` as ``0.00001``).

Examples
--------
>>> class Row(ResponseBody):
...     key: str
...     spend_usd: Real
>>> Row.model_validate({"key": "a", "spend_usd": 0}).model_dump_json()
'{"key":"a","spend_usd":0}'
>>> Row.model_json_schema()["properties"]["spend_usd"]
{'title': 'Spend Usd', 'type': 'number'}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, WithJsonSchema

__all__ = ["Readiness", "Real", "ResponseBody"]

Real = Annotated[int | float, WithJsonSchema({"type": "number"})]


class ResponseBody(BaseModel):
    """A JSON answer; no key but those declared."""

    model_config = ConfigDict(extra="forbid")


class Readiness(ResponseBody):
    """``GET /readyz`` of every service (200 ready, 503 not ready)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
