"""The SDK refuses a name holding a control character, a line separator or a format character
(a bidi override, a zero-width space) before sending, as ingest refuses it:
`record_call(task_type="qa\\n")` was queued, sent, and came back as `EventsRejected` from a
later `flush()` (or, before ingest refused it, was stored as a task type with a line break);
a bidi override or a zero-width space in a name was sent and stored. Free text (an error's
message) is sent as it is. The SDK has its own copy of the rule and of ingest's table of names
(it has no server dependencies): both are checked to be the same here, and to give the same
answer on the same events."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from finops.client import AsyncFinOpsClient, FinOpsClient
from finops.client import _names as sdk_names
from finops.common import name_characters
from finops.common.events.schemas import NAME_FIELDS, NAME_KEYS, validate_batch
from finops.common.name_characters import NAME_CHARACTERS_MESSAGE as CONTROL_MESSAGE

CALL: dict[str, Any] = {
    "task_type": "summarize",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "usage": {"input_tokens": 10, "output_tokens": 2},
    "latency_ms": 5.0,
}


def _sdk(sent: list[Any]) -> AsyncFinOpsClient:
    def platform(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)
        sent.extend(batch)
        return httpx.Response(202, json={"accepted": len(batch)})

    return AsyncFinOpsClient(
        agent_id="bot",
        token="static",
        ingest_url="http://ingest",
        transport=httpx.MockTransport(platform),
        max_backoff_s=0.01,
    )


def test_the_sdk_names_the_fields_ingest_names() -> None:
    assert sdk_names.NAME_FIELDS == NAME_FIELDS
    assert sdk_names.NAME_KEYS == NAME_KEYS
    assert sdk_names.NAME_CHARACTERS_MESSAGE == CONTROL_MESSAGE
    # the same characters: the SDK's copy of the pattern is the rule's
    rule = name_characters.REFUSED_IN_NAMES
    assert sdk_names.REFUSED_IN_NAMES.pattern == rule.pattern
    assert sdk_names.REFUSED_IN_NAMES.flags == rule.flags
    for char in ("\n", "\x85", "\u2028", "\u202e", "\u200b", "\ufeff", "\U000e0041"):
        assert sdk_names.name_refusal(char) == name_characters.name_refusal(char)
    # and the same joiner rule (the SDK's copy of joiner_allowed)
    assert sdk_names.JOINING_LETTERS.pattern == name_characters.JOINING_LETTERS.pattern
    for name in JOINER_NAMES:
        assert sdk_names.refused_character(name) == name_characters.refused_character(name)


#: names with a zero-width non-joiner or joiner: taken where a script needs one, else refused
JOINER_NAMES = (
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, a ZWNJ between letters
    "\u0915\u094d\u200c\u0937",  # Devanagari, a ZWNJ after a virama
    "\u0915\u094d\u200d\u0937",  # Devanagari, a ZWJ after a virama
    "\u0628\u064e\u200c\u062a",  # Arabic, a mark between the letter and the ZWNJ
    "sum\u200cmarize",  # Latin: refused
    "sum\u200dmarize",
    "\U0001f469\u200d\U0001f4bb",  # an emoji sequence: refused
    "\u200c\u0645",  # at an end: refused
    "\u0645\u200c",
    "\u0645\u200d\u0645",  # a ZWJ between Arabic letters: refused
)


def test_the_sdk_takes_a_joiner_only_where_a_script_needs_it() -> None:
    taken = [name for name in JOINER_NAMES if sdk_names.refused_character(name) is None]
    assert taken == list(JOINER_NAMES[:4])
    sdk_names.refuse_control_characters({"data": {"task_type": JOINER_NAMES[0]}})
    with pytest.raises(ValueError, match=r"data\.task_type: .*got U\+200C"):
        sdk_names.refuse_control_characters({"data": {"task_type": "sum\u200cmarize"}})


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"task_type": "sum\nmarize"}, "data.task_type"),
        ({"model": "gpt-4o\x1b[2J"}, "data.model"),
        ({"team": "ops\tteam"}, "data.team"),
        ({"agent_id": "bot\x85"}, "data.agent_id"),
        ({"experiment": {"id": "exp-1", "variant": "b\x7f"}}, "data.experiment.variant"),
        ({"config": {"k\ney": 1}}, "data.config.k\ney"),
        ({"features": {"len\r": 1.0}}, "data.features.len\r"),
        ({"project": "p\u2028q"}, "data.project"),  # a line separator splits a log line too
        ({"task_type": "qa\u2029"}, "data.task_type"),
        # format characters (Cf): invisible, they reorder what is shown or make names alike
        ({"task_type": "sum\u202emarize"}, "data.task_type"),  # right-to-left override
        ({"model": "gpt-4o\u200b"}, "data.model"),  # zero-width space
        ({"team": "\u2066ops\u2069"}, "data.team"),  # a bidi isolate
        ({"provider": "open\u200dai"}, "data.provider"),  # zero-width joiner
        ({"features": {"\ufefflen": 1.0}}, "data.features.\ufefflen"),  # byte order mark
        ({"project": "p\U000e0041"}, "data.project"),  # a tag character (astral)
    ],
)
async def test_record_call_refuses_a_control_character_in_a_name_before_sending(
    arguments: dict[str, Any], field: str
) -> None:
    sent: list[Any] = []
    async with _sdk(sent) as finops:
        with pytest.raises(
            ValueError, match="^" + re.escape(f"{field}: {CONTROL_MESSAGE}")
        ) as refused:
            await finops.record_call(**{**CALL, **arguments})
        assert finops.stats.recorded == 0 and finops.pending == 0
        await finops.record_call(**CALL)  # the client goes on
    assert len(sent) == 1
    # ingest gives the same answer on the event the SDK would have sent (its first error:
    # an agent_id is the event's source too, which ingest names as well)
    details = validate_batch([_event(arguments)]).errors
    assert [d["field"] for d in details] == [field] + (
        ["source"] if "agent_id" in arguments else []
    )
    detail = details[0]
    assert (detail["field"], detail["type"]) == (field, "control_character")
    assert detail["message"].startswith(f"{CONTROL_MESSAGE}; got U+")
    assert str(refused.value).startswith(f"{detail['field']}: {detail['message']}")
    # the message names the character's code point
    value = _at(_event(arguments), field)
    char = next(c for c in value if name_characters.REFUSED_IN_NAMES.match(c))
    assert detail["message"].endswith(f"; got U+{ord(char):04X}" + _named(char))


def _at(event: dict[str, Any], field: str) -> str:
    parent, _, last = field.rpartition(".")
    holder: Any = event
    for part in parent.split("."):
        holder = holder[part]
    return last if last not in holder or not isinstance(holder[last], str) else holder[last]


def _named(char: str) -> str:
    import unicodedata

    name = unicodedata.name(char, "")
    return f" ({name})" if name else ""


def _event(arguments: dict[str, Any]) -> dict[str, Any]:
    data = {**CALL, "agent_id": "bot", "success": True, **arguments}
    return {
        "id": "6f1c1c52-2d1b-4f64-8f3e-9a1f4c1e0a01",
        "type": "agent.llm_call",
        "source": data["agent_id"],
        "time": "2026-12-07T06:00:00+00:00",
        "data": data,
    }


async def test_record_error_refuses_a_control_character_in_a_name_but_sends_free_text() -> None:
    sent: list[Any] = []
    error: dict[str, Any] = {"task_type": "qa", "provider": "openai", "model": "gpt-4o-mini"}
    message = "Traceback:\n  line 1\n\x1b[31mboom\x85\u2028"
    async with _sdk(sent) as finops:
        with pytest.raises(
            ValueError, match="^" + re.escape(f"data.error.type: {CONTROL_MESSAGE}")
        ):
            await finops.record_error(**error, error_type="rate\nlimit", message="m")
        await finops.record_error(**error, message=message, headers={"x-note": "a\tb"})
    [event] = sent
    assert event["data"]["error"]["message"] == message
    assert event["data"]["error"]["headers"] == {"x-note": "a\tb"}
    assert validate_batch([event]).ok


async def test_call_refuses_a_control_character_in_a_name_before_the_agent_s_call_runs() -> None:
    calls: list[Any] = []
    async with _sdk([]) as finops:
        with pytest.raises(ValueError, match="^" + re.escape(f"data.task_type: {CONTROL_MESSAGE}")):
            await finops.call(
                lambda **kw: calls.append(kw),
                task_type="qa\n",
                provider="openai",
                model="gpt-4o-mini",
            )
    assert calls == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"experiment": {"id": "exp-1", "variant": "b\n"}}, "data.experiment.variant"),
        ({"experiment": {"experiment_id": "exp\t1", "variant": "b"}}, "data.experiment.id"),
        (
            {"decision": {"recommendation_id": "rec\x1b1", "propensity": 0.5}},
            "data.decision.recommendation_id",
        ),
        (
            {"experiment": {"id": "exp-1", "variant": "b", "config": {"temp\nerature": 0.2}}},
            "data.config.temp\nerature",
        ),
        (
            {"experiment": {"id": "exp-1", "variant": "b", "config": {"prompt_version": "v\r2"}}},
            "data.config.prompt_version",
        ),
        ({"features": {"len\x85": 1.0}}, "data.features.len\x85"),
        ({"experiment": {"id": "exp-1", "variant": "b\u202e"}}, "data.experiment.variant"),
        ({"features": {"len\u200b": 1.0}}, "data.features.len\u200b"),
        (
            {"decision": {"recommendation_id": "\ufeffrec", "propensity": 0.5}},
            "data.decision.recommendation_id",
        ),
    ],
)
async def test_call_refuses_a_control_character_in_its_tags_before_the_agent_s_call_runs(
    options: dict[str, Any], field: str
) -> None:
    """`call(fn, experiment={"id": "e", "variant": "b\\n"})` ran fn (the agent's paid call),
    then raised the ValueError when it reported the success and lost fn's result: the early
    check covered the names but not the success event's tags or an experiment's config."""
    calls: list[Any] = []
    sent: list[Any] = []
    async with _sdk(sent) as finops:
        with pytest.raises(ValueError, match="^" + re.escape(f"{field}: {CONTROL_MESSAGE}")):
            await finops.call(
                lambda **kw: calls.append(kw),
                task_type="qa",
                provider="openai",
                model="gpt-4o-mini",
                usage=lambda result: {"input_tokens": 1, "output_tokens": 1},
                **options,
            )
        assert finops.pending == 0
    assert calls == [] and sent == []


def test_the_blocking_call_refuses_an_experiment_s_control_character_before_fn_runs() -> None:
    calls: list[Any] = []
    with FinOpsClient(
        agent_id="bot",
        token="static",
        ingest_url="http://ingest",
        transport=httpx.MockTransport(lambda request: httpx.Response(202, json={})),
    ) as finops:
        with pytest.raises(ValueError, match=r"^data\.experiment\.variant: "):
            finops.call(
                lambda **kw: calls.append(kw),
                task_type="qa",
                provider="openai",
                model="gpt-4o-mini",
                experiment={"id": "exp-1", "variant": "b\n"},
            )
    assert calls == []


async def test_call_with_clean_tags_reports_them_on_its_successful_call() -> None:
    sent: list[Any] = []
    async with _sdk(sent) as finops:
        await finops.call(
            lambda **kw: "answer",
            task_type="qa",
            provider="openai",
            model="gpt-4o-mini",
            usage=lambda result: {"input_tokens": 1, "output_tokens": 1},
            decision={"recommendation_id": "rec-1", "propensity": 0.5},
            experiment={"id": "exp-1", "variant": "b", "config": {"prompt_version": "v2"}},
        )
    [event] = sent
    assert event["data"]["experiment"] == {"id": "exp-1", "variant": "b"}
    assert event["data"]["decision"] == {"recommendation_id": "rec-1", "propensity": 0.5}
    assert event["data"]["config"] == {"prompt_version": "v2"}
    assert validate_batch([event]).ok
