"""The data of an ``agent.llm_call`` event, and the identity fields every event's data starts
with."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from finops.common.events.schemas.fields import (
    _SERVER,
    MAX_CONFIG_KEYS,
    MAX_FEATURES,
    CostSource,
    FeatureKey,
    FeatureValue,
    Id128,
    Millis,
    ModelName,
    Name64,
    Unit,
    Usd,
    _Strict,
)
from finops.common.events.usage import UsageInput


def _config_value(v: Any) -> Any:
    """Extra ``config`` values: JSON scalars (strings <= 256) or short lists of them."""
    if v is None or type(v) in (bool, int):
        return v
    if type(v) is float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v
    if type(v) is str:
        if len(v) > 256:
            raise ValueError("string must be at most 256 characters")
        return v
    if type(v) is list:
        if len(v) > 16:
            raise ValueError("list must have at most 16 items")
        for item in v:
            if type(item) is list:
                raise ValueError("nested lists are not allowed")
            _config_value(item)
        return v
    raise ValueError("must be a string, number, boolean, null or a short list of them")


ConfigValue = Annotated[Any, AfterValidator(_config_value)]


class LlmConfig(BaseModel):
    """Request configuration. Known keys are typed; other small scalar keys are allowed."""

    model_config = ConfigDict(
        extra="allow",
        cache_strings="keys",
        json_schema_extra={
            "maxProperties": MAX_CONFIG_KEYS,
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": 256},
                    {"type": ["number", "boolean", "null"]},
                    {
                        "type": "array",
                        "maxItems": 16,
                        "items": {"type": ["string", "number", "boolean", "null"]},
                    },
                ]
            },
        },
    )
    __pydantic_extra__: dict[str, ConfigValue] = Field(init=False)  # type: ignore[assignment]

    temperature: Annotated[float, Field(strict=True, ge=0, le=2, allow_inf_nan=False)] | None = None
    top_p: Unit | None = None
    max_tokens: Annotated[int, Field(strict=True, ge=1, le=10_000_000)] | None = None
    prompt_version: Id128 | None = None

    @model_validator(mode="before")
    @classmethod
    def _small(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            if len(data) > MAX_CONFIG_KEYS:
                raise ValueError(f"config must have at most {MAX_CONFIG_KEYS} keys")
            for key in data:
                if not isinstance(key, str) or not 1 <= len(key) <= 64:
                    raise ValueError("config keys must be strings of 1..64 characters")
        return data


class Experiment(_Strict):
    id: Id128
    variant: Id128


class Decision(_Strict):
    recommendation_id: Id128
    propensity: Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)] = Field(
        description="Probability with which the recommended arm was chosen, in (0, 1]."
    )


class Remedy(_Strict):
    advice_id: Id128


class CallIdentity(_Strict):
    """Who made the call and to which model: the fields every event type starts with.

    Subclasses add their own fields after these, so the JSON field order stays
    ``agent_id, team, project, task_type, provider, model, ...`` for every type.
    """

    agent_id: Id128
    team: Id128 | None = None
    project: Id128 | None = None
    task_type: Name64
    provider: Name64
    model: ModelName


class LlmCallDataV1(CallIdentity):
    config: LlmConfig = Field(default_factory=LlmConfig)
    usage: UsageInput
    cost_usd: Usd | None = Field(None, description="Client-reported cost; else computed.")
    latency_ms: Millis
    ttft_ms: Millis | None = None
    success: bool = Field(strict=True)
    quality: Unit | None = None
    experiment: Experiment | None = None
    decision: Decision | None = None
    remedy: Remedy | None = None
    features: Annotated[dict[FeatureKey, FeatureValue], Field(max_length=MAX_FEATURES)] | None = (
        None
    )
    # stamped by the server
    cost_source: CostSource | None = Field(None, json_schema_extra=_SERVER)
    price_version: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        None, json_schema_extra=_SERVER
    )
    principal: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        None, json_schema_extra=_SERVER
    )
