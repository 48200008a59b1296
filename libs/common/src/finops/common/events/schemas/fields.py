"""The schema's version, its event type names and limits, and the field types its models share."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = "1"
SPEC_VERSION: Literal["1.0"] = "1.0"

LLM_CALL = "agent.llm_call"
ERROR = "agent.error"

MAX_FEATURES = 32
MAX_CONFIG_KEYS = 32
MAX_ERROR_MESSAGE = 2000
MAX_ERROR_HEADERS = 32
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 512

Id128 = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]
Name64 = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
ModelName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
Millis = Annotated[float, Field(strict=True, ge=0, le=86_400_000, allow_inf_nan=False)]
#: the largest cost of one call (an event's cost_usd, an outcomes file's cost_usd)
MAX_USD = 1_000_000
Usd = Annotated[float, Field(strict=True, ge=0, le=MAX_USD, allow_inf_nan=False)]
Unit = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
#: a feature's name, in an event and in a recommendation request alike
MAX_FEATURE_NAME = 64
FeatureKey = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=MAX_FEATURE_NAME)
]
FeatureValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]

CostSource = Literal["reported", "computed", "unpriced"]
# The shared taxonomy (finops.common.provider_errors.taxonomy.ErrorKind has the same values,
# a test keeps them equal; a Literal here keeps the events' JSON schema a plain string enum).
ErrorKind = Literal[
    "rate_limit",
    "quota_exhausted",
    "overloaded",
    "server_error",
    "timeout",
    "network",
    "context_length_exceeded",
    "invalid_output",
    "content_policy",
    "auth",
    "bad_request",
    "model_not_found",
    "unknown",
]
ERROR_KINDS: tuple[str, ...] = ErrorKind.__args__  # type: ignore[attr-defined]
#: Names of the first schema, still accepted and read as the current ones.
ERROR_KIND_ALIASES: dict[str, str] = {
    "context_length": "context_length_exceeded",
    "content_filter": "content_policy",
    "invalid_request": "bad_request",
    "connection": "network",
    "other": "unknown",
}

_SERVER: dict[str, Any] = {
    "readOnly": True,
    "description": "Stamped by the server; client values are ignored.",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", cache_strings="keys")
