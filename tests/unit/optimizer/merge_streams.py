"""Random call streams split by task type, for the tests of the merged optimizer aggregates
(test_analytics_merge.py, test_budget_merge.py).

Costs are multiples of 1/1024 USD and qualities multiples of 1/8, so float sums are exact in any
order and merged figures can be compared for equality.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from finops.common.events import LlmCallEvent, llm_call_event

T0 = datetime(2025, 3, 1, tzinfo=UTC)
TASK_TYPES = ("qa", "code", "search", "summarise", "chat", "extract")
AGENT_TEAM = {"bot": "search", "crawler": "search", "writer": "support", "triage": None}

_Fed = TypeVar("_Fed")


def random_call(
    rng: random.Random,
    when: datetime | str,
    agent: str | None = None,
    task_type: str | None = None,
) -> LlmCallEvent:
    """A call at ``when`` of ``agent`` (in its team) for ``task_type`` (random when None)."""
    output_tokens = rng.randrange(0, 500)
    agent = agent or rng.choice(sorted(AGENT_TEAM))
    return LlmCallEvent.model_validate(
        llm_call_event(
            {
                "agent_id": agent,
                "team": AGENT_TEAM[agent],
                "task_type": task_type or rng.choice(TASK_TYPES),
                "provider": rng.choice(("openai", "anthropic")),
                "model": rng.choice(("small", "medium", "large")),
                "usage": {
                    "input_tokens": rng.randrange(50, 2000),
                    "output_tokens": output_tokens,
                    "cached_input_tokens": rng.randrange(0, 50),
                    "reasoning_tokens": rng.randrange(0, output_tokens + 1),
                },
                "cost_usd": None if rng.random() < 0.05 else rng.randrange(0, 64) / 1024,
                "latency_ms": float(rng.randrange(1, 20_000)),
                "success": rng.random() < 0.8,
                "quality": None if rng.random() < 0.3 else rng.randrange(0, 9) / 8,
            },
            time=when,
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        )
    )


def split_by_task_type(
    rng: random.Random, events: list[LlmCallEvent], parts: int
) -> list[list[LlmCallEvent]]:
    """The events of each task type go to one (random) part; each part keeps stream order."""
    owner = {t: rng.randrange(parts) for t in TASK_TYPES}
    split: list[list[LlmCallEvent]] = [[] for _ in range(parts)]
    for e in events:
        split[owner[e.data.task_type]].append(e)
    return split


def fed(
    make: Callable[[], _Fed], feed: Callable[[_Fed, LlmCallEvent], Any], events: list[LlmCallEvent]
) -> _Fed:
    """A new instance fed ``events`` in order."""
    instance = make()
    for e in events:
        feed(instance, e)
    return instance
