"""Whether the platform noticed the run's injected quality drifts. Pure: no I/O.

The optimizer writes a drift alert to ``finops.alerts.v1`` when its drift detector fires
(:func:`finops.optimizer.domain.drift_alerts.drift_alert`: an
:class:`~finops.common.alerts.Alert` of kind ``drift`` whose ``details`` hold the policy's
drift event: ``task_type``, ``arm``, ``metric``, ``direction``, ...). The run reads the
topic's records back (:mod:`finops.cli.simulation_driver.drift_watch`); this module keeps
those of the run (:class:`TopicMark`), parses the drift alerts among them
(:meth:`DriftAlertSeen.from_record`) and matches them with the injected drifts
(:func:`find_drifts`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from finops.cli.simulation.drift_targets import ServedShare
from finops.cli.simulation.faults import QualityDrift

#: what a drift alert's ``details.metric`` may say
METRICS = frozenset({"quality", "cost", "latency"})


@dataclass(frozen=True)
class TopicRecord:
    """One record read back from the alerts topic: where it was, its value and its
    timestamp (milliseconds since the epoch; None when the broker gave none)."""

    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class TopicMark:
    """Where the topic ended when the run began: per partition, the offset of the first
    record the run may have caused (a partition not named began empty)."""

    next_offsets: dict[int, int] = field(default_factory=dict)

    @classmethod
    def after(cls, records: Iterable[TopicRecord]) -> TopicMark:
        """The mark past every record of ``records`` (the whole topic, read at the start).

        Examples
        --------
        >>> TopicMark.after([TopicRecord(0, 4, b""), TopicRecord(0, 7, b"")]).next_offsets
        {0: 8}
        """
        ends: dict[int, int] = {}
        for record in records:
            ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
        return cls(ends)

    def holds(self, record: TopicRecord) -> bool:
        """Whether ``record`` came after the mark (during the run)."""
        return record.offset >= self.next_offsets.get(record.partition, 0)


@dataclass(frozen=True)
class RoundStart:
    """When a round of the fleet's tasks began (milliseconds since the epoch, the machine's
    clock) and the share of the run's tasks done before it."""

    at_ms: float
    done: float


@dataclass(frozen=True)
class DriftAlertSeen:
    """A drift alert of the run, as the optimizer wrote it."""

    subject: str
    task_type: str
    #: the optimizer's arm id, ``model|provider|config``
    arm: str
    #: ``quality``, ``cost`` or ``latency``
    metric: str
    #: ``decrease`` or ``increase`` (None when the alert does not say)
    direction: str | None
    #: the record's timestamp (ms since the epoch), None when the broker gave none
    at_ms: float | None = None
    #: the experiment whose winner's pin this drift lifted (``details``'
    #: ``unpinned_experiment_id``), None when it lifted none
    unpinned_experiment: str | None = None

    @property
    def model(self) -> str:
        return self.arm.split("|", 1)[0]

    @classmethod
    def from_record(cls, record: TopicRecord) -> DriftAlertSeen | None:
        """The drift alert ``record`` holds; None for any other record (another kind of
        alert, a value that is not an alert of the shape :class:`~finops.common.alerts.Alert`
        writes)."""
        try:
            alert = json.loads(record.value or b"")
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(alert, dict) or alert.get("kind") != "drift":
            return None
        details = alert.get("details")
        if not isinstance(details, dict):
            return None
        task_type, arm, metric = details.get("task_type"), details.get("arm"), details.get("metric")
        direction = details.get("direction")
        subject = alert.get("subject")
        if not (
            isinstance(task_type, str)
            and isinstance(arm, str)
            and metric in METRICS
            and isinstance(subject, str)
            and (direction is None or isinstance(direction, str))
        ):
            return None
        at_ms = record.timestamp_ms if record.timestamp_ms and record.timestamp_ms > 0 else None
        unpinned = details.get("unpinned_experiment_id")
        return cls(
            subject,
            task_type,
            arm,
            str(metric),
            direction,
            at_ms,
            unpinned if isinstance(unpinned, str) else None,
        )

    def notices(self, drift: QualityDrift) -> bool:
        """Whether this alert says ``drift`` happened: a quality drift of its model (any
        provider) on its task type, not for the better (the injected drift is a drop)."""
        return (
            self.metric == "quality"
            and self.direction != "increase"
            and self.model == drift.model
            and self.task_type == drift.task_type
        )


def share_at(rounds: Sequence[RoundStart], at_ms: float | None) -> float | None:
    """The share of the run's tasks done by the end of the round in which ``at_ms`` fell
    (the optimizer reads a round's calls before the next round starts, so an alert a call
    raised comes within its round); None when unknown (no time, or before the first round).

    Examples
    --------
    >>> rounds = [RoundStart(1000, 0.0), RoundStart(2000, 0.5)]
    >>> share_at(rounds, 1500), share_at(rounds, 2500), share_at(rounds, 500)
    (0.5, 1.0, None)
    """
    if at_ms is None or not rounds or at_ms < rounds[0].at_ms:
        return None
    later = [r.done for r in rounds if r.at_ms > at_ms]
    return min(later) if later else 1.0


@dataclass(frozen=True)
class DriftNoticed:
    """An injected drift and whether a drift alert of the run said so."""

    model: str
    task_type: str
    #: the share of the run from which the drift is injected
    injected_at: float
    #: None when the alerts could not be read
    noticed: bool | None
    #: the share of the run's tasks done by the round of the first alert that noticed it
    #: (None when not noticed, or its time is unknown)
    noticed_at: float | None = None
    #: the drift landed on the model serving most of the task type's calls at its start
    followed_traffic: bool = False
    #: the share of the task type's answered tasks the model served in the tenth of the run
    #: before the drift and in the tenth after (None: unknown, or no answered task there)
    served_before: float | None = None
    served_after: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "task_type": self.task_type,
            "injected_at": self.injected_at,
            "followed_traffic": self.followed_traffic,
            "noticed": self.noticed,
        }
        if self.noticed_at is not None:
            out["noticed_at"] = round(self.noticed_at, 4)
        for name in ("served_before", "served_after"):
            share = getattr(self, name)
            if share is not None:
                out[name] = round(share, 4)
        return out

    def served(self) -> str | None:
        """How the routing treated the drifted model, for a person (None when unknown).

        >>> DriftNoticed("m", "qa", 0.5, False, served_before=0.82, served_after=0.05).served()
        'it served 82 % of qa calls just before, 5 % just after'
        """
        if self.served_before is None or self.served_after is None:
            return None
        return (
            f"it served {self.served_before * 100:.0f} % of {self.task_type} calls just before,"
            f" {self.served_after * 100:.0f} % just after"
        )

    def where(self, of_the_run: bool = False) -> str:
        """Where the drift was injected, for a person.

        >>> DriftNoticed("m", "qa", 0.5, None, followed_traffic=True).where()
        'injected at 50 % on the model serving most qa calls then'
        >>> DriftNoticed("m", "qa", 0.5, None).where(of_the_run=True)
        'injected at 50 % of the run'
        """
        where = f"injected at {self.injected_at * 100:.0f} %"
        if of_the_run:
            where += " of the run"
        if self.followed_traffic:
            where += f" on the model serving most {self.task_type} calls then"
        return where


@dataclass(frozen=True)
class OtherDriftAlert:
    """A drift alert of the run that notices no injected drift (a false alarm)."""

    subject: str
    #: the alert's metric: ``quality``, ``cost`` or ``latency``
    what: str

    def as_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "what": self.what}


@dataclass(frozen=True)
class DriftFindings:
    """Per injected drift whether it was noticed, and the run's other drift alerts."""

    drifts: tuple[DriftNoticed, ...] = ()
    #: None when the alerts could not be read
    others: tuple[OtherDriftAlert, ...] | None = ()
    #: the experiments whose winner's pin a drift alert of the run lifted (not in the JSON:
    #: each experiment's ``pin_lifted`` says it)
    unpinned: frozenset[str] = frozenset()

    def lifted_pin_of(self, experiment_id: str) -> bool | None:
        """Whether a drift alert of the run lifted the pin of ``experiment_id``'s winner;
        None when the alerts could not be read."""
        return None if self.others is None else experiment_id in self.unpinned

    @classmethod
    def unread(cls, injected: Iterable[QualityDrift]) -> DriftFindings:
        """The findings when the alerts could not be read: nothing known."""
        return cls(
            tuple(
                DriftNoticed(d.model, d.task_type, d.start, None, None, d.follow_traffic)
                for d in injected
            ),
            None,
        )

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> DriftFindings | None:
        """The findings in a run's JSON result (:meth:`as_json`'s fields); None for the
        result of a run before they were reported.

        Examples
        --------
        >>> found = DriftFindings((DriftNoticed("m", "qa", 0.5, True, 0.6),), ())
        >>> DriftFindings.from_json(found.as_json()) == found, DriftFindings.from_json({})
        (True, None)
        """
        if not isinstance(result.get("drifts"), list):
            return None
        drifts = tuple(
            DriftNoticed(
                str(d["model"]),
                str(d["task_type"]),
                float(d["injected_at"]),
                d.get("noticed"),
                d.get("noticed_at"),
                bool(d.get("followed_traffic", False)),
                d.get("served_before"),
                d.get("served_after"),
            )
            for d in result["drifts"]
        )
        others = result.get("other_drift_alerts")
        return cls(
            drifts,
            None
            if others is None
            else tuple(OtherDriftAlert(str(o["subject"]), str(o["what"])) for o in others),
        )

    def with_served(self, served: Sequence[ServedShare]) -> DriftFindings:
        """These findings with, per drift (in order), the share of its task type's calls its
        model served just before and just after it."""
        drifts = tuple(
            replace(d, served_before=share.before, served_after=share.after)
            for d, share in zip(self.drifts, served, strict=True)
        )
        return replace(self, drifts=drifts)

    def summary_lines(self) -> list[str]:
        """One line per injected drift, then one of the other drift alerts (when read)."""
        lines = [summary_line(d) for d in self.drifts]
        if self.others is not None:
            lines.append(others_line(self.others))
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "drifts": [d.as_json() for d in self.drifts],
            "other_drift_alerts": None
            if self.others is None
            else [o.as_json() for o in self.others],
        }


def find_drifts(
    injected: Iterable[QualityDrift],
    alerts: Sequence[DriftAlertSeen],
    rounds: Sequence[RoundStart] = (),
) -> DriftFindings:
    """Match the run's drift ``alerts`` (in the order they were read) with the ``injected``
    drifts; an alert that notices none of them is one of the others.

    Examples
    --------
    >>> drift = QualityDrift("gpt-4o-mini", "extract", start=0.5, drop=0.3)
    >>> seen = DriftAlertSeen("extract/gpt-4o|openai|default", "extract",
    ...     "gpt-4o|openai|default", "quality", "decrease")
    >>> found = find_drifts([drift], [seen])
    >>> found.drifts[0].noticed, found.others
    (False, (OtherDriftAlert(subject='extract/gpt-4o|openai|default', what='quality'),))
    """
    injected = list(injected)
    drifts = []
    counted: set[int] = set()  # the alerts that notice an injected drift, by position
    for drift in injected:
        # an alert of the drifted arm raised before the drift began (in a round that ended
        # by its start) is a false alarm, not the drift noticed; one with no time is neither
        matching = [
            (i, share_at(rounds, a.at_ms)) for i, a in enumerate(alerts) if a.notices(drift)
        ]
        after = [(i, t) for i, t in matching if t is not None and t > drift.start]
        untimed = [i for i, t in matching if t is None]
        counted.update(i for i, _ in after)
        counted.update(untimed)
        noticed: bool | None = True if after else (None if untimed else False)
        drifts.append(
            DriftNoticed(
                drift.model,
                drift.task_type,
                drift.start,
                noticed,
                min(t for _, t in after) if after else None,
                drift.follow_traffic,
            )
        )
    others = tuple(
        OtherDriftAlert(a.subject, a.metric) for i, a in enumerate(alerts) if i not in counted
    )
    unpinned = frozenset(a.unpinned_experiment for a in alerts if a.unpinned_experiment)
    return DriftFindings(tuple(drifts), others, unpinned)


def summary_line(drift: DriftNoticed) -> str:
    """The summary's line of one injected drift.

    Examples
    --------
    >>> summary_line(DriftNoticed("gpt-4o-mini", "extract", 0.5, True, 0.62))
    'drift: gpt-4o-mini on extract (injected at 50 %) noticed at 62 %'
    >>> summary_line(DriftNoticed("gpt-4o-mini", "extract", 0.5, None))
    'drift: gpt-4o-mini on extract (injected at 50 %) unknown: the alerts could not be read'
    """
    said = {True: "noticed", False: "not noticed", None: "unknown: the alerts could not be read"}
    line = f"drift: {drift.model} on {drift.task_type} ({drift.where()}) {said[drift.noticed]}"
    if drift.noticed_at is not None:
        line += f" at {drift.noticed_at * 100:.0f} %"
    served = drift.served()
    return line if served is None else f"{line}; {served}"


def figure_value(drift: DriftNoticed) -> str:
    """What the report's summary says of one injected drift: ``noticed at 62 %``,
    ``not noticed``, ``unknown``."""
    if drift.noticed is None:
        return "unknown"
    if not drift.noticed:
        return "not noticed"
    at = "" if drift.noticed_at is None else f" at {drift.noticed_at * 100:.0f} %"
    return f"noticed{at}"


def others_line(others: Sequence[OtherDriftAlert]) -> str:
    """The summary's line of the run's other drift alerts.

    Examples
    --------
    >>> others_line([OtherDriftAlert("qa/a|p|default", "cost")])
    'other drift alerts: 1 (cost of qa/a|p|default)'
    >>> others_line([])
    'other drift alerts: 0'
    """
    if not others:
        return "other drift alerts: 0"
    listed = ", ".join(f"{o.what} of {o.subject}" for o in others)
    return f"other drift alerts: {len(others)} ({listed})"
