"""What the engine reads from an event or a decision: the arm, its config, the features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finops.common.events import LlmCallData, Usage
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


def learned_cost(data: LlmCallData) -> float | None:
    """The call's cost for the cost model, which learns it against the request's input tokens
    (its features, as a recommendation is asked for); ``None`` for a call healed by sending
    fewer input tokens than its request had (a prompt truncated to fit the model's window):
    its cost is another request's. Learned against the request's 150,000-185,000 tokens, such
    calls, billed for the 127,800 sent, flattened the arm's pooled cost slope, and its other
    task types' larger prompts cost more than estimated (a false cost drift alert in every
    demo run).

    The cost model stays in the features' tokens: an agent's count may differ from the
    provider's (another tokenizer, a system prompt it leaves out), and a model learned in the
    billed tokens but asked in the features' would be off by that ratio on every arm.
    """
    feature = (data.features or {}).get(COST_FEATURE)
    truncated = (
        data.remedy is not None and feature is not None and 0 < data.usage.input_tokens < feature
    )
    return None if truncated else data.cost_usd
