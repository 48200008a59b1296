"""The data of the events the client queues, and the features of a recommendation's query:
built from the agent's arguments (checked and queued by the client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def experiment_tag(experiment: Mapping[str, Any]) -> dict[str, str]:
    """``{id, variant}`` from a tag, or from what ``assign()`` answered."""
    if "experiment_id" in experiment:
        return {"id": str(experiment["experiment_id"]), "variant": str(experiment["variant"])}
    return {"id": str(experiment["id"]), "variant": str(experiment["variant"])}


def call_data(
    default_agent_id: str,
    *,
    task_type: str,
    provider: str,
    model: str,
    usage: Mapping[str, Any],
    latency_ms: float,
    success: bool = True,
    quality: float | None = None,
    cost_usd: float | None = None,
    config: Mapping[str, Any] | None = None,
    ttft_ms: float | None = None,
    team: str | None = None,
    project: str | None = None,
    experiment: Mapping[str, Any] | None = None,
    decision: Mapping[str, Any] | None = None,
    remedy: Mapping[str, str] | None = None,
    features: Mapping[str, float] | None = None,
    agent_id: str | None = None,
) -> dict[str, Any]:
    """The ``data`` of the ``agent.llm_call`` event ``record_call`` queues (also built, and
    checked, by ``call()`` before the agent's call runs)."""
    if config is None and experiment is not None and experiment.get("config"):
        config = experiment["config"]
    data: dict[str, Any] = {
        "agent_id": agent_id or default_agent_id,
        "task_type": task_type,
        "provider": provider,
        "model": model,
        "usage": dict(usage),
        "latency_ms": latency_ms,
        "success": success,
    }
    optional = {
        "quality": quality,
        "cost_usd": cost_usd,
        "config": dict(config) if config else None,
        "ttft_ms": ttft_ms,
        "team": team,
        "project": project,
        "experiment": experiment_tag(experiment) if experiment else None,
        "decision": dict(decision) if decision else None,
        "remedy": dict(remedy) if remedy else None,
        "features": dict(features) if features else None,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    return data


def error_event_data(
    agent_id: str,
    *,
    task_type: str,
    provider: str,
    model: str,
    error: Mapping[str, Any],
    request: Mapping[str, Any],
    attempt: int,
    remedy: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The ``data`` of the ``agent.error`` event ``record_error`` queues: ``error`` and
    ``request`` without their None values (``request`` left out when all are)."""
    data: dict[str, Any] = {
        "agent_id": agent_id,
        "task_type": task_type,
        "provider": provider,
        "model": model,
        "error": {k: v for k, v in error.items() if v is not None},
        "attempt": attempt,
    }
    if any(v is not None for v in request.values()):
        data["request"] = {k: v for k, v in request.items() if v is not None}
    if remedy:
        data["remedy"] = dict(remedy)
    return data


def lower_cased(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with lower-cased names; a name given twice (in any case) is a ValueError."""
    lowered: dict[str, str] = {}
    given: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in lowered:
            raise ValueError(
                f"headers: {given[key]!r} and {name!r} are the same header (names are "
                "case-insensitive); give it once"
            )
        lowered[key], given[key] = str(value), name
    return lowered


#: the query parameters of a recommendation that are not features
_PARAMETERS = frozenset({"task_type", "agent_id", "team", "seed"})


def feature_value(name: str, value: Any) -> float:
    """A feature's value as a number, or ``ValueError`` naming the feature (``float()`` alone
    said "could not convert string to float: 'abc'", not which feature).

    >>> feature_value("input_tokens", 1200), feature_value("ratio", "0.5")
    (1200.0, 0.5)
    >>> feature_value("input_tokens", "many")
    Traceback (most recent call last):
    ...
    ValueError: feature 'input_tokens' must be a number, not 'many'
    """
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"feature {name!r} must be a number, not {value!r}") from None


def feature_parameter(name: str) -> str:
    """The query parameter a feature is sent as: ``feature.<name>`` for a name a parameter
    has (or one that starts so), else the name itself (what optimizers before the prefix
    read).

    >>> feature_parameter("input_tokens"), feature_parameter("seed")
    ('input_tokens', 'feature.seed')
    >>> feature_parameter("feature.x")
    'feature.feature.x'
    """
    return f"feature.{name}" if name in _PARAMETERS or name.startswith("feature.") else name
