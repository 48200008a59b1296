"""Whether `finops simulate` says the platform noticed its injected quality drift.

The alerts are those the optimizer writes to ``finops.alerts.v1``, built by its own code
(:func:`finops.optimizer.domain.drift_alerts.drift_alert` of a policy drift event), so that a
change of their shape fails here. The topic's reads are a test's own (:class:`Topic`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from finops.cli.commands.simulate import print_summary
from finops.cli.report.model import summary_figures
from finops.cli.simulation.drift_findings import (
    DriftAlertSeen,
    DriftFindings,
    RoundStart,
    TopicRecord,
    find_drifts,
)
from finops.cli.simulation.drift_targets import ServedShare
from finops.cli.simulation.faults import QualityDrift, default_schedule
from finops.cli.simulation_driver.drift_watch import DriftWatch
from finops.cli.simulation_driver.experiments import ExperimentOutcome, with_lifted_pin
from finops.common.alerts import Alert
from finops.optimizer.domain.arm_identity import ArmSpec
from finops.optimizer.domain.drift_alerts import drift_alert
from finops.optimizer.domain.policy.learning import DriftSignal, drift_event
from finops.optimizer.domain.promotion import drift_note

INJECTED = default_schedule().drifts
(DRIFT,) = INJECTED
assert DRIFT == QualityDrift("gpt-4o-mini", "extract", start=0.5, drop=0.3, follow_traffic=True)


def alert(
    task_type: str = "extract",
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    metric: str = "quality",
    direction: int = -1,
    seen: int = 1,
) -> dict[str, Any]:
    """A drift alert as the optimizer writes it."""
    arm = ArmSpec(model, provider).arm_id
    event = drift_event(task_type, arm, DriftSignal(metric, direction, 0.9, 0.6), 500 + seen)
    return drift_alert(event, f"event-{seen}", drift_note(None, False))


def record(value: dict[str, Any] | bytes | None, offset: int, at_ms: int = 0) -> TopicRecord:
    raw = value if value is None or isinstance(value, bytes) else json.dumps(value).encode()
    return TopicRecord(0, offset, raw, at_ms)


#: a run of ten rounds, one a second from t = 0 ms, each a tenth of the tasks
ROUNDS = [RoundStart(1000 * i, i / 10) for i in range(10)]


def found(*alerts: dict[str, Any], at_ms: int = 7500) -> DriftFindings:
    """What the run finds of ``alerts``, each raised at ``at_ms`` (by default in the round
    that ends at 80 % of the run: after the drift began, at 50 %)."""
    seen = [DriftAlertSeen.from_record(record(a, n, at_ms)) for n, a in enumerate(alerts)]
    return find_drifts(INJECTED, [s for s in seen if s is not None], ROUNDS)


def test_an_alert_of_the_drifted_arm_raised_before_the_drift_began_does_not_notice_it():
    """A false alarm on the drifted arm (in the rate-limit storm at 30-40 %, say) is counted
    with the others, not taken for the injected drift noticed."""
    findings = found(alert(), at_ms=3500)
    assert findings.drifts[0].noticed is False
    assert [(o.subject, o.what) for o in findings.others or ()] == [
        ("extract/gpt-4o-mini|openai|default", "quality")
    ]
    # the round that ends at the drift's start is before it, the next one after it
    assert found(alert(), at_ms=4500).drifts[0].noticed is False
    later = found(alert(), at_ms=5500).drifts[0]
    assert (later.noticed, later.noticed_at) == (True, 0.6)


def test_an_alert_of_the_drifted_arm_with_no_time_leaves_it_unknown():
    findings = find_drifts(INJECTED, [DriftAlertSeen.from_record(record(alert(), 0, 0))], ROUNDS)
    assert findings.drifts[0].noticed is None
    assert findings.others == ()


def test_a_quality_drop_of_the_drifted_model_on_its_task_type_notices_it():
    findings = found(alert())
    assert [(d.model, d.task_type, d.noticed) for d in findings.drifts] == [
        ("gpt-4o-mini", "extract", True)
    ]
    assert findings.others == ()


def test_the_model_at_another_provider_notices_it_too():
    assert found(alert(provider="azure")).drifts[0].noticed is True


@pytest.mark.parametrize(
    ("wrong", "subject", "what"),
    [
        ({"task_type": "summarize"}, "summarize/gpt-4o-mini|openai|default", "quality"),
        ({"model": "gpt-4o"}, "extract/gpt-4o|openai|default", "quality"),
        ({"metric": "cost"}, "extract/gpt-4o-mini|openai|default", "cost"),
        ({"metric": "latency"}, "extract/gpt-4o-mini|openai|default", "latency"),
        ({"direction": 1}, "extract/gpt-4o-mini|openai|default", "quality"),
    ],
    ids=["another task type", "another model", "cost", "latency", "quality for the better"],
)
def test_any_other_drift_alert_does_not_notice_it_and_is_counted_apart(
    wrong: dict[str, Any], subject: str, what: str
):
    findings = found(alert(**wrong))
    assert findings.drifts[0].noticed is False
    assert [(o.subject, o.what) for o in findings.others or ()] == [(subject, what)]


def test_records_that_are_no_drift_alert_are_skipped():
    breaker = Alert("breaker_open", "b1", "openai/gpt-4o-mini", "critical", "opened", "healer")
    no_details = {**alert(), "details": "extract"}
    unknown_metric = alert(metric="throughput")
    for value in (breaker.to_dict(), no_details, unknown_metric, b"\xff{", b"[1]", None):
        assert DriftAlertSeen.from_record(record(value, 0)) is None
    assert DriftAlertSeen.from_record(record(alert(), 0)) is not None


class Topic:
    """The alerts topic: what each read returns, in turn; an exception is raised."""

    def __init__(self, *reads: list[TopicRecord] | BaseException) -> None:
        self.reads = list(reads)

    async def __call__(self) -> list[TopicRecord]:
        read = self.reads.pop(0)
        if isinstance(read, BaseException):
            raise read
        return read


async def test_only_the_alerts_raised_during_the_run_count():
    earlier = [record(alert(seen=1), 0), record(alert(model="gpt-4o", seen=2), 1)]
    warnings: list[str] = []
    watch = DriftWatch(INJECTED, warnings.append, read=Topic(earlier, earlier))
    await watch.start()
    findings = await watch.findings()
    # the earlier run noticed the drift and raised a false alert: neither is this run's
    assert findings.drifts[0].noticed is False
    assert findings.others == ()
    assert warnings == []


async def test_an_alert_after_the_mark_counts_and_is_placed_in_the_run():
    earlier = [record(alert(model="gpt-4o", seen=1), 0)]
    now = [
        *earlier,
        record(alert(metric="cost", seen=2), 1, 2_500),
        record(alert(seen=3), 2, 3_500),
    ]
    watch = DriftWatch(INJECTED, print, read=Topic(earlier, now))
    await watch.start()
    for at_ms, done in ((1_000, 0.0), (2_000, 0.25), (3_000, 0.5), (4_000, 0.75)):
        watch.rounds.append(RoundStart(at_ms, done))
    findings = await watch.findings()
    assert findings.drifts[0].noticed is True
    # raised in the round from 50 % to 75 % of the tasks: said at that round's end
    assert findings.drifts[0].noticed_at == 0.75
    assert [(o.subject, o.what) for o in findings.others or ()] == [
        ("extract/gpt-4o-mini|openai|default", "cost")
    ]


async def test_the_drift_is_matched_on_the_model_it_landed_on():
    """The default drift follows the traffic: on the model serving most extract calls at its
    start (a cheaper fallback the optimizer moved extract to, say), whose alert notices it;
    an alert of the model first named is then one of the others."""
    landed = replace(DRIFT, model="mistral-small-2603")
    now = [
        record(alert(model="mistral-small-2603", provider="mistral", seen=1), 0, 3_500),
        record(alert(seen=2), 1, 3_500),
    ]
    watch = DriftWatch(INJECTED, print, read=Topic([], now))
    await watch.start()
    for at_ms, done in ((1_000, 0.0), (2_000, 0.25), (3_000, 0.5), (4_000, 0.75)):
        watch.rounds.append(RoundStart(at_ms, done))
    findings = await watch.findings([landed])
    (drift,) = findings.drifts
    assert (drift.model, drift.noticed, drift.noticed_at) == ("mistral-small-2603", True, 0.75)
    assert [(o.subject, o.what) for o in findings.others or ()] == [
        ("extract/gpt-4o-mini|openai|default", "quality")
    ]


@pytest.mark.parametrize("failing_read", [0, 1], ids=["at the start", "at the end"])
async def test_a_broker_that_does_not_answer_leaves_it_unknown_with_a_warning(failing_read: int):
    reads: list[list[TopicRecord] | BaseException] = [[record(alert(), 0)], [record(alert(), 0)]]
    reads[failing_read] = KafkaConnectionError("no broker")
    warnings: list[str] = []
    watch = DriftWatch(INJECTED, warnings.append, read=Topic(*reads))
    await watch.start()
    findings = await watch.findings()

    assert [d.noticed for d in findings.drifts] == [None]
    assert len(warnings) == 1 and "finops.alerts.v1" in warnings[0]
    assert findings.as_json() == {
        "drifts": [
            {
                "model": "gpt-4o-mini",
                "task_type": "extract",
                "injected_at": 0.5,
                "followed_traffic": True,
                "noticed": None,
            }
        ],
        "other_drift_alerts": None,
    }


def _result(findings: DriftFindings) -> dict[str, Any]:
    figures = {
        "saving": 0.4,
        "quality_ratio": 0.97,
        "healed_ratio": 1.0,
        "healed": 9,
        "recoverable_errors": 9,
        "lost_events": 0,
        "events_sent": 120,
        "optimized_cost_usd": 0.6,
        "baseline_cost_usd": 1.0,
        "optimized_quality": 0.8,
        "baseline_quality": 0.82,
        "baseline_answered": 100,
        "answered": 100,
        "baseline_errors": 3,
        "errors": 9,
        "baseline_healed": 1,
        "baseline_recoverable_errors": 3,
        "elapsed_s": 12.0,
        "calls": 100,
        "agents": 2,
        "seed": 7,
        "experiments": [],
    }
    # through JSON, as `finops report` reads the run's result back
    return json.loads(json.dumps({**figures, **findings.as_json()}))


def test_the_summary_and_the_report_say_whether_it_was_noticed(capsys):
    seen = [DriftAlertSeen.from_record(record(alert(model="gpt-4o"), 0, 1_500))]
    findings = find_drifts(INJECTED, [s for s in seen if s is not None], [RoundStart(1_000, 0)])
    result = _result(findings)

    print_summary(result)
    out = capsys.readouterr().out
    served = "on the model serving most extract calls then"
    assert f"drift: gpt-4o-mini on extract (injected at 50 % {served}) not noticed" in out
    assert "other drift alerts: 1 (quality of extract/gpt-4o|openai|default)" in out

    rows = {f.label: (f.value, f.note) for f in summary_figures(result)}
    assert rows["drift of gpt-4o-mini on extract"] == (
        "not noticed",
        f"injected at 50 % of the run {served}",
    )
    assert rows["other drift alerts"] == ("1", "quality of extract/gpt-4o|openai|default")


def test_the_summary_and_the_report_say_how_much_the_drifted_model_served_around_it(capsys):
    findings = DriftFindings.unread(INJECTED)
    findings = replace(findings, others=()).with_served([ServedShare(0.82, 0.05)])
    result = _result(findings)
    assert (result["drifts"][0]["served_before"], result["drifts"][0]["served_after"]) == (
        0.82,
        0.05,
    )
    assert DriftFindings.from_json(result) == findings
    print_summary(result)
    assert (
        "; it served 82 % of extract calls just before, 5 % just after" in capsys.readouterr().out
    )
    rows = {f.label: f.note for f in summary_figures(result)}
    assert rows["drift of gpt-4o-mini on extract"].endswith(
        "; it served 82 % of extract calls just before, 5 % just after"
    )


def test_the_result_of_a_run_before_the_drift_was_reported_shows_no_drift_row():
    result = _result(DriftFindings())
    del result["drifts"], result["other_drift_alerts"]
    assert not [f for f in summary_figures(result) if "drift" in f.label]


def unpinning_alert(experiment_id: str) -> DriftAlertSeen:
    """The optimizer's drift alert of a winner whose pin the drift lifted."""
    arm = ArmSpec("gpt-4o-mini", "openai").arm_id
    event = {
        **drift_event("summarize", arm, DriftSignal("quality", -1, 0.9, 0.6), 700),
        "unpinned_experiment_id": experiment_id,
    }
    promotion = {"experiment": "sim-cheaper", "experiment_id": experiment_id}
    value = drift_alert(event, "event-1", drift_note(promotion, True))
    seen = DriftAlertSeen.from_record(record(value, 0, 7500))
    assert seen is not None
    return seen


def test_a_pin_is_said_lifted_only_when_a_drift_alert_of_the_run_names_its_experiment():
    findings = find_drifts(INJECTED, [unpinning_alert("x1")], ROUNDS)
    assert (findings.lifted_pin_of("x1"), findings.lifted_pin_of("x2")) == (True, False)
    assert DriftFindings.unread(INJECTED).lifted_pin_of("x1") is None
    unpinned = ExperimentOutcome("e", "cheaper_variant", "summarize", "x2", "decided", "B", True)
    # promoted, not recommended at the end, and no alert names it: not "unpinned by a drift"
    outcome = with_lifted_pin(unpinned, findings.lifted_pin_of("x2"))
    assert (outcome.pin_lifted, outcome.pinned_at_end) == (False, False)
    assert with_lifted_pin(replace(unpinned, id="x1"), True).pin_lifted is True


def test_the_summary_says_a_winner_no_longer_recommended_without_a_drift_alert(capsys):
    result = _result(DriftFindings())
    unpinned = ExperimentOutcome("e", "cheaper_variant", "summarize", "x2", "decided", "B", True)
    result["experiments"] = [with_lifted_pin(unpinned, False).as_json()]
    print_summary(result)
    out = capsys.readouterr().out
    assert "promoted, not recommended at the end (no drift alert of the run lifted its pin)" in out
    assert "unpinned by a drift" not in out
