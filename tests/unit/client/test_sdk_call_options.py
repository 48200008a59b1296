"""``call()``'s options for agents that keep their own time and tag their calls: a clock that
does the waits and measures the latency, a quality read from the result, the decision and
experiment tags (the decision only for the model first asked; the experiment on every call
assigned, a fallback's and the error of one that gives up), and the ids of every event
queued."""

from __future__ import annotations

import asyncio
import json
import typing
from typing import Any

import httpx
import pytest
from test_sdk_healing import OVERLOADED, APIStatusError, Platform, Provider, advice, sdk

from finops.client import CallOptions, FinOpsClient


class SimulatedClock:
    """Seconds that pass only when told: a call takes ``call_s``, a sleep its argument."""

    def __init__(self, call_s: float) -> None:
        self.t = 1000.0
        self.call_s = call_s
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


class TimedProvider(Provider):
    """A :class:`Provider` whose every attempt takes ``clock.call_s`` simulated seconds."""

    def __init__(self, clock: SimulatedClock, *failures: BaseException) -> None:
        super().__init__(*failures)
        self.clock = clock

    def __call__(self, **arguments: Any) -> Any:
        self.clock.t += self.clock.call_s
        return super().__call__(**arguments)


async def test_a_clock_does_the_waits_and_measures_the_latency() -> None:
    platform = Platform([advice("wait", delay_ms=20_000)])
    clock = SimulatedClock(call_s=0.25)
    provider = TimedProvider(clock, APIStatusError(429, {}))
    async with sdk(platform) as finops:
        await finops.call(provider, task_type="qa", provider="p", model="m", clock=clock)
    # the 20 s wait passed on the clock only (a real sleep would time the test out)
    assert clock.slept == [20.0]
    assert platform.of_type("agent.llm_call")[0]["latency_ms"] == pytest.approx(250.0)


async def test_the_time_budget_is_read_on_the_clock() -> None:
    platform = Platform([advice("wait", delay_ms=5_000), advice("wait", delay_ms=5_000)])
    clock = SimulatedClock(call_s=3.0)
    provider = TimedProvider(clock, APIStatusError(429, {}), APIStatusError(429, {}))
    async with sdk(platform) as finops:
        with pytest.raises(APIStatusError) as raised:
            await finops.call(
                provider, task_type="qa", provider="p", model="m", clock=clock, budget_s=10
            )
    # 3 s + 5 s wait + 3 s: a second 5 s wait would end at 16 s, past the 10 s budget
    assert len(provider.calls) == 2 and clock.slept == [5.0]
    assert "time budget" in raised.value.__notes__[0]


async def test_quality_from_the_result_and_tags_when_the_first_model_answers() -> None:
    platform = Platform([advice("retry")])
    provider = Provider(APIStatusError(503, {}))
    reported: list[str] = []
    decision = {"recommendation_id": "rec-1", "propensity": 0.5}
    async with sdk(platform) as finops:
        await finops.call(
            provider,
            task_type="qa",
            provider="p",
            model="m",
            quality=lambda result: 0.25 if result["text"] == "ok" else 0.0,
            decision=decision,
            experiment={"experiment_id": "exp-1", "variant": "B", "model": "m"},
            features={"input_tokens": 12.0},
            on_reported=reported.append,
        )
    (success,) = platform.of_type("agent.llm_call")
    assert success["quality"] == 0.25 and success["decision"] == decision
    assert success["experiment"] == {"id": "exp-1", "variant": "B"}
    assert success["features"] == {"input_tokens": 12.0}
    assert reported == [e["id"] for e in platform.events]  # the error, then the call
    assert [e["type"] for e in platform.events] == ["agent.error", "agent.llm_call"]


async def test_after_a_fallback_the_call_carries_its_experiment_but_no_decision() -> None:
    # Intention-to-treat: the experiment counts every call assigned to a variant, the one
    # a fallback answered too (left out, a flaky variant looked better than it was and its
    # split drifted until the sample-ratio check blocked the experiment). The optimizer did
    # not choose the fallback's model: no decision, and not the variant's config either.
    platform = Platform([advice("fallback", provider="openai", model="gpt-4o")])
    assignment = {
        "experiment_id": "exp-1", "variant": "A", "model": "claude", "provider": "anthropic",
        "config": {"temperature": 0.2}, "propensity": 0.5,
    }  # fmt: skip
    async with sdk(platform) as finops:
        await finops.call(
            Provider(OVERLOADED),
            task_type="qa",
            provider="anthropic",
            model="claude",
            decision={"recommendation_id": "rec-1", "propensity": 0.5},
            experiment=assignment,
        )
    (success,) = platform.of_type("agent.llm_call")
    # what says it fell back: another model than the variant's, and the advice that moved it
    assert success["model"] == "gpt-4o" and success["remedy"] == {"advice_id": "adv-1"}
    assert success["experiment"] == {"id": "exp-1", "variant": "A"}
    assert "decision" not in success and "config" not in success


async def test_on_the_model_first_asked_the_call_carries_both_tags_and_the_config() -> None:
    platform = Platform([advice("retry")])
    async with sdk(platform) as finops:
        await finops.call(
            Provider(OVERLOADED),
            task_type="qa",
            provider="anthropic",
            model="claude",
            decision={"recommendation_id": "rec-1", "propensity": 0.5},
            experiment={"experiment_id": "exp-1", "variant": "A", "config": {"top_p": 0.9}},
        )
    (success,) = platform.of_type("agent.llm_call")
    assert success["experiment"] == {"id": "exp-1", "variant": "A"}
    assert success["decision"] == {"recommendation_id": "rec-1", "propensity": 0.5}
    assert success["config"] == {"top_p": 0.9}


async def test_the_error_a_call_gives_up_after_carries_its_experiment() -> None:
    # A call assigned to a variant that gives up (every attempt failed) is a failure of its
    # variant: the last error carries the assignment (the experiments service counts it),
    # the earlier ones do not, and the healer's advice requests never carry it.
    platform = Platform([advice("fallback", provider="openai", model="gpt-4o"), advice("abort")])
    provider = Provider(OVERLOADED, APIStatusError(503, {}))
    async with sdk(platform) as finops:
        with pytest.raises(APIStatusError):
            await finops.call(
                provider,
                task_type="qa",
                provider="anthropic",
                model="claude",
                experiment={"id": "exp-1", "variant": "B"},
            )
    first, last = platform.of_type("agent.error")
    assert "experiment" not in first
    assert last["experiment"] == {"id": "exp-1", "variant": "B"} and last["model"] == "gpt-4o"
    assert platform.of_type("agent.llm_call") == []
    assert all("experiment" not in asked for asked in platform.asked)


async def test_a_call_out_of_attempts_tags_its_last_error_and_an_untagged_call_none() -> None:
    platform = Platform([advice("retry", "a1"), advice("retry", "a2")])
    failing = Provider(*[APIStatusError(503, {}) for _ in range(4)])
    async with sdk(platform) as finops:
        with pytest.raises(APIStatusError):
            await finops.call(
                failing, task_type="qa", provider="p", model="m", max_attempts=2,
                experiment={"id": "exp-1", "variant": "A"},
            )  # fmt: skip
        with pytest.raises(APIStatusError):
            await finops.call(failing, task_type="qa", provider="p", model="m", max_attempts=1)
    tags = [e.get("experiment") for e in platform.of_type("agent.error")]
    assert tags == [None, {"id": "exp-1", "variant": "A"}, None]


def test_the_blocking_twin_waits_on_the_agents_clock() -> None:
    platform = Platform([advice("wait", delay_ms=30_000)])
    clock = SimulatedClock(call_s=0.5)
    provider = TimedProvider(clock, APIStatusError(429, {}))
    with FinOpsClient(
        agent_id="bot", token="static", ingest_url="http://ingest", healer_url="http://healer",
        transport=httpx.MockTransport(platform),
    ) as finops:  # fmt: skip
        finops.call(provider, task_type="qa", provider="p", model="m", clock=clock)
    assert clock.slept == [30.0]
    assert platform.of_type("agent.llm_call")[0]["latency_ms"] == pytest.approx(500.0)


def test_the_blocking_twin_awaits_a_clock_whose_sleep_is_a_coroutine() -> None:
    class AsyncSleepClock(SimulatedClock):
        async def sleep(self, seconds: float) -> None:  # type: ignore[override]
            super().sleep(seconds)

    platform = Platform([advice("wait", delay_ms=7_000)])
    clock = AsyncSleepClock(call_s=0.1)
    with FinOpsClient(
        agent_id="bot", token="static", ingest_url="http://ingest", healer_url="http://healer",
        transport=httpx.MockTransport(platform),
    ) as finops:  # fmt: skip
        finops.call(
            TimedProvider(clock, APIStatusError(429, {})),
            task_type="qa", provider="p", model="m", clock=clock,
        )  # fmt: skip
    assert clock.slept == [7.0]


class OlderIngest(Platform):
    """An ingest of a version before the experiment tag of an error: it refuses the field
    (422, the fields at fault by index), as its strict schema does, and takes the rest."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            return super().__call__(request)
        batch = json.loads(request.content)
        details = [
            {"index": i, "field": "data.experiment", "message": "Extra inputs are not permitted",
             "type": "extra_forbidden"}
            for i, e in enumerate(batch)
            if e["type"] == "agent.error" and "experiment" in e["data"]
        ]  # fmt: skip
        if details:
            error = {"code": "invalid_events", "message": "invalid events", "details": details}
            return httpx.Response(422, json={"error": error})
        return super().__call__(request)


async def test_an_older_ingest_gets_the_give_up_without_its_experiment_tag() -> None:
    # The SDK before the tag kept working against it; this one would have had the error
    # refused and raised EventsRejected from close(): the healer and the optimizer lost it.
    platform = OlderIngest([advice("abort")])
    async with sdk(platform) as finops:
        with pytest.raises(APIStatusError):
            await finops.call(
                Provider(APIStatusError(401, {})), task_type="qa", provider="p", model="m",
                experiment={"id": "exp-1", "variant": "B"},
            )  # fmt: skip
    (error,) = platform.of_type("agent.error")
    assert "experiment" not in error and error["model"] == "m"


async def test_a_call_cancelled_while_the_healer_is_asked_tags_its_last_error() -> None:
    # The agent's own timeout cancels the call while the SDK waits for the healer's advice:
    # the call ends there, after this error, so the experiment must count it (intention-to-
    # treat). Whatever raised in the advice step, the error went out untagged, and the
    # experiment missed a failure of its variant.
    asked = asyncio.Event()
    events: list[dict[str, Any]] = []

    async def platform(request: httpx.Request) -> httpx.Response:
        if request.url.host == "healer":
            asked.set()
            await asyncio.Event().wait()  # the healer never answers
        events.extend(json.loads(request.content))
        return httpx.Response(202, json={"accepted": len(events)})

    async with sdk(platform) as finops:  # type: ignore[arg-type]
        call = asyncio.create_task(
            finops.call(
                Provider(OVERLOADED), task_type="qa", provider="anthropic", model="claude",
                experiment={"experiment_id": "exp-1", "variant": "B", "model": "claude"},
            )
        )  # fmt: skip
        await asked.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    (error,) = [e["data"] for e in events if e["type"] == "agent.error"]
    assert error["experiment"] == {"id": "exp-1", "variant": "B"}
    assert error["model"] == "claude" and events[0]["type"] == "agent.error"


class FailingClock(SimulatedClock):
    """A clock that fails once the agent's call has failed (``broken``), as the SDK reads it
    to weigh the advice against the time budget."""

    broken = False

    def now(self) -> float:
        if self.broken:
            raise OSError("the clock failed")
        return super().now()


async def test_a_call_whose_advice_step_raises_tags_the_error_it_gives_up_after() -> None:
    platform = Platform([advice("retry")])
    clock = FailingClock(call_s=0.0)

    def llm(**arguments: Any) -> Any:
        clock.broken = True
        raise APIStatusError(503, {})

    async with sdk(platform) as finops:
        with pytest.raises(OSError, match="the clock failed"):
            await finops.call(
                llm, task_type="qa", provider="p", model="m", clock=clock,
                experiment={"id": "exp-1", "variant": "A"},
            )  # fmt: skip
    (error,) = platform.of_type("agent.error")
    assert error["experiment"] == {"id": "exp-1", "variant": "A"}
    assert platform.asked and all("experiment" not in asked for asked in platform.asked)


async def test_an_option_json_cannot_carry_is_refused_before_the_agents_call_runs() -> None:
    platform = Platform([])
    provider = Provider()
    async with sdk(platform) as finops:
        with pytest.raises(ValueError, match=r"^data\.config\.stop\[0\]: b'\\n' \(bytes\)"):
            await finops.call(
                provider, task_type="qa", provider="p", model="m",
                experiment={"id": "exp-1", "variant": "A", "config": {"stop": [b"\n"]}},
            )  # fmt: skip
    assert provider.calls == [] and platform.events == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # a misspelt option was ignored: the call ran with 5 attempts, not the 2 asked for
        ({"task_type": "qa", "provider": "p", "model": "m", "max_attempt": 2},
         "call() got an unexpected keyword argument 'max_attempt'; its options are task_type,"
         " provider, model, params, trim, input_tokens, max_tokens, usage, max_attempts,"
         " budget_s, quality, team, project, event_id, decision, experiment, features, config,"
         " clock, on_reported"),
        # copied from record_call: said nothing of why it is not an option
        ({"task_type": "qa", "provider": "p", "model": "m", "cost_usd": 0.1},
         "call() got an unexpected keyword argument 'cost_usd' (cost_usd is record_call's:"
         " call() leaves the cost to the platform, priced from the usage; report such a call"
         " with record_call); its options are task_type, provider, model, params, trim,"
         " input_tokens, max_tokens, usage, max_attempts, budget_s, quality, team, project,"
         " event_id, decision, experiment, features, config, clock, on_reported"),
        # KeyError: 'model'
        ({"task_type": "qa", "provider": "p"},
         "call() missing a required keyword argument: 'model'"),
    ],
)  # fmt: skip
async def test_an_unknown_or_missing_option_is_refused_before_the_agents_call_runs(
    options: dict[str, Any], message: str
) -> None:
    platform = Platform([])
    provider = Provider()
    async with sdk(platform) as finops:
        with pytest.raises(TypeError) as refused:
            await finops.call(provider, **options)
    assert str(refused.value) == message
    assert provider.calls == [] and platform.events == []


def test_the_required_options_are_those_call_options_marks_required() -> None:
    from finops.client._healing import REQUIRED_OPTIONS

    hints = typing.get_type_hints(CallOptions, include_extras=True)
    marked = [name for name, hint in hints.items() if typing.get_origin(hint) is typing.Required]
    assert list(REQUIRED_OPTIONS) == marked


async def test_the_config_of_the_call_is_reported_unless_it_fell_back() -> None:
    # docs/events.md told agents to pass config= to call(): a TypeError since 630f6cd
    platform = Platform([advice("fallback", provider="azure", model="gpt-4o")])
    config = {"temperature": 0.2}
    async with sdk(platform) as finops:
        await finops.call(Provider(), task_type="qa", provider="p", model="m", config=config)
        await finops.call(
            Provider(OVERLOADED), task_type="qa", provider="p", model="m", config=config,
            experiment={"id": "exp-1", "variant": "A", "config": {"temperature": 0.9}},
        )  # fmt: skip
    first, fell_back = platform.of_type("agent.llm_call")
    assert first["config"] == config
    assert fell_back["model"] == "gpt-4o" and "config" not in fell_back
