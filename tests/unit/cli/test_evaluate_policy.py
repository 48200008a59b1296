"""`finops evaluate-policy` on a stubbed decision log: no broker is asked."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from finops.cli.commands import evaluate_policy
from finops.cli.main import app

PLAIN = {"TTY_COMPATIBLE": "0", "FORCE_COLOR": None, "COLUMNS": None, "NO_COLOR": "1"}
#: arm -> (quality, cost): the logging policy offers both and draws each half the time
ARMS = {"big|openai|default": (0.9, 0.010), "small|groq|default": (0.6, 0.001)}


def decision_log(n: int = 20) -> tuple[list[dict], list[dict]]:
    recs, outcomes = [], []
    for i in range(n):
        arm = list(ARMS)[i % 2]
        model, provider, _ = arm.split("|")
        recs.append(
            {
                "recommendation_id": f"r{i}",
                "task_type": "qa",
                "arm": arm,
                "propensity": 0.5,
                "alternatives": [
                    {"arm": a, "expected_quality": q, "expected_cost_usd": c}
                    for a, (q, c) in ARMS.items()
                ],
            }
        )
        quality, cost = ARMS[arm]
        data = {"model": model, "provider": provider, "quality": quality, "cost_usd": cost}
        outcomes.append({"data": {**data, "decision": {"recommendation_id": f"r{i}"}}})
    return recs, outcomes


@pytest.fixture
def log(monkeypatch):
    """The decision log `evaluate-policy` reads, instead of the broker's topics."""
    held: dict[str, tuple[list[dict], list[dict]]] = {"log": decision_log()}

    async def read_log(idle_s: float, *args, **kwargs):
        return held["log"]

    monkeypatch.setattr(evaluate_policy, "_read_log", read_log)
    return held


def invoke(*args: str):
    return CliRunner().invoke(app, ["evaluate-policy", *args], env=PLAIN, prog_name="finops")


def estimates(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.output
    return {e["policy"]: e for e in json.loads(result.stdout)["estimates"]}


def test_a_fixed_arm_is_that_arm_never_the_cheapest(log):
    result = invoke("--json", "--policy", "cheapest", "--policy", "fixed:big|openai|default")
    got = estimates(result)
    # half the decisions took each arm at propensity 0.5: IPS is the arm's own quality
    assert got["cheapest"]["ips_quality"] == pytest.approx(0.6)
    assert got["fixed:big|openai|default"]["ips_quality"] == pytest.approx(0.9)
    assert got["fixed:big|openai|default"]["dr_cost_usd"] == pytest.approx(0.010)


def test_a_model_naming_one_logged_arm_resolves_to_it_and_says_so(log):
    result = invoke("--policy", "fixed:big")
    assert result.exit_code == 0, result.output
    assert "fixed:big is the logged arm big|openai|default" in result.stdout
    assert "fixed:big|openai|default" in result.stdout
    as_json = invoke("--json", "--policy", "fixed:big", "--policy", "fixed:small|groq")
    got = estimates(as_json)
    assert got["fixed:big|openai|default"]["ips_quality"] == pytest.approx(0.9)
    assert got["fixed:small|groq|default"]["ips_quality"] == pytest.approx(0.6)
    assert as_json.stderr == (
        "fixed:big is the logged arm big|openai|default\n"
        "fixed:small|groq is the logged arm small|groq|default\n"
    )


@pytest.mark.parametrize("json_out", [(), ("--json",)], ids=["table", "json"])
def test_an_arm_no_decision_took_or_offered_is_refused_naming_the_known_arms(log, json_out):
    result = invoke(*json_out, "--policy", "fixed:nosuch")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: fixed:nosuch: no logged decision took or offered that arm; known arms "
        "(model|provider|config): big|openai|default, small|groq|default\n"
    )


def test_an_arm_matching_several_logged_arms_is_refused(log):
    recs, _ = log["log"]
    for rec in recs:
        rec["alternatives"].append(
            {"arm": "big|azure|default", "expected_quality": 0.9, "expected_cost_usd": 0.02}
        )
    result = invoke("--policy", "fixed:big")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: fixed:big matches 2 logged arms (big|azure|default, big|openai|default): "
        "give one as model|provider|config\n"
    )


def test_fixed_without_an_arm_is_refused_before_reading_the_log(monkeypatch):
    async def read_log(*args, **kwargs):
        raise AssertionError("the log was read")

    monkeypatch.setattr(evaluate_policy, "_read_log", read_log)
    result = invoke("--policy", "fixed:")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: fixed: needs an arm, e.g. fixed:gpt-4o|openai|default (model|provider|config)\n"
    )


def test_decisions_that_did_not_offer_the_fixed_arm_are_counted_in_a_note(log):
    recs, _ = log["log"]
    for rec in recs[1::2]:  # the decisions that took the small arm offered only it
        rec["alternatives"] = rec["alternatives"][1:]
    result = invoke("--policy", "fixed:big|openai|default")
    assert result.exit_code == 0, result.output
    assert (
        "fixed:big|openai|default: not offered in 10 of 20 decisions; there it counts as the "
        "cheapest arm offered" in result.stdout
    )


@pytest.mark.parametrize("json_out", [(), ("--json",)], ids=["table", "json"])
def test_nothing_to_evaluate_is_a_failure_in_json_too(log, json_out):
    recs, _ = log["log"]
    log["log"] = (recs, [])  # decisions logged, no outcome reported yet
    result = invoke(*json_out)
    assert result.exit_code == 1
    message = "error: nothing to evaluate yet: no outcome carries a logged recommendation_id"
    counts = (
        "20 recommendations logged · 0 outcomes reported · 0 joined · 0 not followed · 0 unmatched"
    )
    if json_out:
        assert (result.stdout, result.stderr) == ("", f"{message} ({counts})\n")
    else:
        assert (result.stdout, result.stderr) == (f"{counts}\n", f"{message}\n")


def test_a_figure_no_decision_defines_is_null_in_json_and_a_dash_in_the_table(log):
    recs, outcomes = log["log"]
    # only the big arm was ever taken: no decision matches the cheapest policy
    log["log"] = (recs[::2], outcomes[::2])
    result = invoke("--json", "--policy", "cheapest")
    assert result.exit_code == 0, result.output
    assert "NaN" not in result.stdout
    (cheapest,) = json.loads(result.stdout)["estimates"]
    assert cheapest["matched"] == 0
    assert (cheapest["snips_quality"], cheapest["snips_cost_usd"]) == (None, None)
    assert cheapest["ips_quality"] == 0.0
    table = invoke("--policy", "cheapest")
    assert table.exit_code == 0, table.output
    (row,) = [ln for ln in table.stdout.splitlines() if "cheapest" in ln]
    assert [c.strip() for c in row.split("│")[1:-1]] == [
        "cheapest",
        "0",
        "0",
        "0.0000",
        "-",
        "0.6000",
        "$0.001000",
    ]


async def test_both_topics_are_read_at_once_and_progress_is_told(monkeypatch):
    """Each topic's read ends with a quiet wait: one after the other, they added up."""
    import asyncio
    from types import SimpleNamespace

    import finops.common.kafka

    recs, outcomes = decision_log(4)
    outcomes.append({"data": {"model": "m"}})  # a cost event of no recommendation
    started: dict[str, asyncio.Event] = {}

    async def read_topic(settings, topic, *, idle_s):
        started.setdefault(topic, asyncio.Event()).set()
        other = next(t for t in ("finops.recommendations.v1", "agent.cost.v1") if t != topic)
        # read one after the other, this waits for a read that starts only after it
        await asyncio.wait_for(started.setdefault(other, asyncio.Event()).wait(), timeout=10)
        for item in recs if topic == "finops.recommendations.v1" else outcomes:
            yield SimpleNamespace(value=json.dumps(item).encode())

    monkeypatch.setattr(finops.common.kafka, "read_topic", read_topic)
    told: list[dict[str, int]] = []
    got = await evaluate_policy._read_log(0.5, told.append)
    assert got == (recs, outcomes[:4])
    assert told[-1] == {"finops.recommendations.v1": 4, "agent.cost.v1": 5}


async def test_records_of_the_log_that_are_not_json_objects_are_left_out_and_counted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    import finops.common.kafka

    good = {"recommendation_id": "r1", "chosen": "a"}
    values = {
        "finops.recommendations.v1": [json.dumps(good).encode(), b"{cut short", b"[1, 2]"],
        "agent.cost.v1": [b'{"recommendation_id": "r1", "data": {}}', b'"recommendation_id" ?'],
    }

    async def read_topic(settings, topic, *, idle_s):
        for value in values[topic]:
            yield SimpleNamespace(value=value)

    monkeypatch.setattr(finops.common.kafka, "read_topic", read_topic)
    recs, outcomes = await evaluate_policy._read_log(0.5)
    assert recs == [good]
    assert outcomes == [{"recommendation_id": "r1", "data": {}}]
    err = capsys.readouterr().err.splitlines()
    assert sorted(err) == [
        "agent.cost.v1: 1 records left out: not JSON objects",
        "finops.recommendations.v1: 2 records left out: not JSON objects",
    ]


def test_without_a_policy_every_named_policy_is_evaluated_as_help_says(log):
    from finops.optimizer.domain.offpolicy import TARGET_POLICIES

    got = estimates(invoke("--json"))
    assert (
        list(got)
        == list(TARGET_POLICIES)
        == [
            "cheapest",
            "best-quality",
            "cheapest-within-95",
            "cheapest-within-90",
        ]
    )
    shown = " ".join(invoke("--help").stdout.replace("│", " ").split())
    assert "cheapest-within-90 or fixed:<arm>; default: the four named ones." in shown
