"""The values an event carries: numpy's numbers sent as plain ones, and a successful call
reported (its answer returned) whatever its usage() or quality() give."""

from __future__ import annotations

import logging
import numbers
from decimal import Decimal
from typing import Any

import httpx
import numpy as np
import pytest
from test_sdk import CALL, ScriptedIngest, client
from test_sdk_healing import Platform, Provider, sdk

from finops.client import FinOpsClient


class Ratio:
    """A number of its own library (registered as numbers.Real, not a float)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value


numbers.Real.register(Ratio)


async def test_numbers_of_numpy_and_other_libraries_are_recorded_as_plain_numbers() -> None:
    # record_call refused them with a ValueError ('cannot be sent as JSON'): at f0e76da they
    # were queued (np.float32 failing its batch's encoding at every send)
    ingest = ScriptedIngest()
    c = client(ingest)
    await c.record_call(
        **{**CALL, "usage": {"input_tokens": np.int64(10), "output_tokens": np.int32(2)}},
        quality=np.float32(0.5),
        cost_usd=Ratio(0.25),
        features={"input_tokens": np.float64(1.5), "flag": np.bool_(True)},
    )
    await c.close()
    data = ingest.batches[0][0]["data"]
    assert data["usage"] == {"input_tokens": 10, "output_tokens": 2}
    assert type(data["usage"]["input_tokens"]) is int
    assert (data["quality"], data["cost_usd"]) == (0.5, 0.25)
    assert data["features"] == {"input_tokens": 1.5, "flag": True}


@pytest.mark.parametrize("blocking", [False, True])
async def test_a_successful_call_is_returned_and_reported_whatever_its_usage_and_quality(
    blocking: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # call() raised ValueError after the agent's paid LLM call succeeded: its answer was lost
    platform = Platform([])
    provider = Provider()

    def usage(result: Any) -> dict[str, Any]:
        return {"input_tokens": np.int64(12), "output_tokens": 3, "cost": Decimal("0.1")}

    options: dict[str, Any] = {
        "task_type": "qa", "provider": "openai", "model": "m", "usage": usage,
        "quality": lambda result: Decimal("0.9"),
    }  # fmt: skip
    if blocking:
        with FinOpsClient(
            agent_id="bot", token="static", ingest_url="http://ingest",
            healer_url="http://healer", transport=httpx.MockTransport(platform),
        ) as finops:  # fmt: skip
            result = finops.call(provider, **options)
    else:
        async with sdk(platform) as finops:
            result = await finops.call(provider, **options)
    assert result["text"] == "ok"
    [call] = platform.of_type("agent.llm_call")
    assert call["usage"] == {"input_tokens": 12, "output_tokens": 3} and "quality" not in call
    assert "usage.cost: Decimal('0.1') (Decimal) cannot be sent as JSON" in caplog.text
    assert "quality: Decimal('0.9') (Decimal) cannot be sent as JSON" in caplog.text


async def test_a_quality_function_that_raises_loses_neither_the_answer_nor_the_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    platform = Platform([])

    def quality(result: Any) -> float:
        raise KeyError("score")

    async with sdk(platform) as finops:
        result = await finops.call(
            Provider(), task_type="qa", provider="openai", model="m", quality=quality
        )
    assert result["text"] == "ok"
    assert "quality" not in platform.of_type("agent.llm_call")[0]
    assert "quality() raised" in caplog.text


def test_a_blocking_call_whose_client_closes_while_it_runs_returns_its_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    platform = Platform([])
    finops = FinOpsClient(
        agent_id="bot", token="static", ingest_url="http://ingest",
        transport=httpx.MockTransport(platform),
    )  # fmt: skip

    def llm(**arguments: Any) -> dict[str, Any]:
        finops.close()  # another thread's close(), while the call runs
        return {"text": "ok"}

    with caplog.at_level(logging.ERROR, "finops.client"):
        assert finops.call(llm, task_type="qa", provider="openai", model="m") == {"text": "ok"}
    assert "succeeded but was not reported: the client is closed" in caplog.text


async def test_a_value_met_twice_is_not_a_circular_reference() -> None:
    # {"a": L, "b": L, "c": Decimal(1)} named b as holding itself, not c
    c = client(ScriptedIngest())
    shared = [1]
    with pytest.raises(ValueError, match=r"^data\.config\.c: Decimal\('1'\)"):
        await c.record_call(**CALL, config={"a": shared, "b": shared, "c": Decimal(1)})
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match=r"^data\.config\.x\[0\]: holds itself"):
        await c.record_call(**CALL, config={"x": looped})
    await c.close()
