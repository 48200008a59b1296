"""What the engine reads from an event or a decision: the arm, its config, the features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finops.common.events import Usage
from finops.optimizer.domain.arm_identity import ArmSpec
from finops.optimizer.domain.features import COST_FEATURE


def arm_spec(arm: Mapping[str, Any]) -> ArmSpec:
    """The arm of a mapping with ``model``, ``provider`` and an optional ``config``."""
    return ArmSpec(str(arm["model"]), str(arm["provider"]), config_dict(arm.get("config")))


def config_dict(config: Any) -> dict[str, Any]:
    """A call's config (a model or a mapping) without its unset fields."""
    if config is None:
        return {}
    raw = config.model_dump() if hasattr(config, "model_dump") else dict(config)
    return {k: v for k, v in raw.items() if v is not None}


def call_features(features: Mapping[str, float] | None, usage: Usage) -> dict[str, float]:
    """A call's features, with its input tokens as the cost feature unless it has one."""
    out = dict(features or {})
    out.setdefault(COST_FEATURE, float(usage.input_tokens))
    return out
