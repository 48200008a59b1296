"""Budget alerts: which thresholds a budget's spend or forecast crossed (pure domain code).

Alerts are :class:`~finops.common.alerts.Alert` with ``kind="budget"``. Each alert's ``details``
hold ``alert_type``, the budget, the threshold, spend, limit and forecast, the period and the
event time that raised it.

* ``alert_type="threshold"``: once per threshold (default 80 % and 100 %) per period, when the
  actual spend reaches ``threshold x limit`` (one event crossing both gives both, in order).
* ``alert_type="forecast_exceeds"``: once per period, when the forecast exceeds the limit
  while the spend is still below it: the early warning.

``alert_id`` is a UUID5 of ``budget id | period start | threshold`` (or ``forecast``): re-
processing the same events after a restart yields the same ids, so a consumer can dedupe.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from finops.common.alerts import Alert
from finops.optimizer.domain import ALERT_SOURCE
from finops.optimizer.domain.budget_definitions import Budget, usd
from finops.optimizer.domain.burn_rate import HOUR, BurnState
from finops.optimizer.domain.eventtime import iso_utc

__all__ = [
    "FORECAST_LABEL",
    "QuietAlert",
    "alert_id",
    "check_alerts",
    "label_id",
    "limited_label_id",
    "quiet_alerts",
    "rearm",
    "rearmed_id",
    "threshold_label",
]

_NAMESPACE = uuid.UUID("6f1c3c1e-5d2b-4d8e-9a43-6a1b0c7e2f10")
#: the ``fired`` label of the forecast alert (thresholds are labelled by their value)
FORECAST_LABEL = "forecast"


def alert_id(budget_id: str, period_start: float, label: str, limit_usd: float) -> str:
    """Deterministic alert id: UUID5 of ``budget|<id>|<period start>|<label>|<limit>``
    (a budget replaced with another limit fires its thresholds again, under new ids)."""
    key = _label_key(budget_id, iso_utc(period_start), label)
    return str(uuid.uuid5(_NAMESPACE, f"{key}|{float(limit_usd)!r}"))


def label_id(alert: Alert) -> str:
    """The id of ``alert``'s budget, period and threshold (or forecast) whatever the limit:
    the id budget alerts had before the limit was part of it.

    A partitioned optimizer counts an alert raised under this id (by the version before
    limits were part of the ids) as raised for the rest of its period, as that version did
    (see ``adapters/shard_snapshots``).

    >>> st = BurnState(0.0, 86400.0)
    >>> st.add(0.0, 9.0, 1)
    >>> [a] = [a for a in check_alerts(Budget("b", "team", "s", "day", 10.0), st, 1800.0)
    ...        if a.details["alert_type"] == "threshold"]
    >>> label_id(a) == str(uuid.uuid5(_NAMESPACE, "budget|b|1970-01-01T00:00:00Z|0.8"))
    True
    """
    d = alert.details
    forecast = d["alert_type"] == "forecast_exceeds"
    label = FORECAST_LABEL if forecast else threshold_label(float(d["threshold"]))
    return str(uuid.uuid5(_NAMESPACE, _label_key(str(d["budget_id"]), d["period_start"], label)))


def _label_key(budget_id: str, period_start_iso: str, label: str) -> str:
    return f"budget|{budget_id}|{period_start_iso}|{label}"


def limited_label_id(label: str) -> str:
    """The id saying that the alert of :func:`label_id` ``label`` was raised under an id
    with its budget's limit (:func:`alert_id`), not under ``label`` itself as before limits
    were part of the ids: only such an alert is raised again after a new limit.

    >>> limited_label_id("a") == limited_label_id("a") != limited_label_id("b")
    True
    """
    return str(uuid.uuid5(_NAMESPACE, f"limited|{label}"))


def rearmed_id(label: str, limit_usd: float) -> str:
    """The id saying that the alert of :func:`label_id` ``label`` was seen not holding under
    ``limit_usd``: raised before, it may be raised again under that limit (what :func:`rearm`
    does for one worker, for a tracker that does not fire alerts itself).

    >>> rearmed_id("a", 10.0) == rearmed_id("a", 10), rearmed_id("a", 10.0) == rearmed_id("a", 11)
    (True, False)
    """
    return str(uuid.uuid5(_NAMESPACE, f"rearmed|{label}|{float(limit_usd)!r}"))


@dataclass(frozen=True)
class QuietAlert:
    """An alert of a budget's period whose condition does not hold under its limit now."""

    #: :func:`label_id` of the alert: its budget, period and threshold (or forecast)
    label_id: str
    #: :func:`rearmed_id` of the alert under the budget's limit
    rearmed_id: str


def quiet_alerts(b: Budget, st: BurnState, ts: float) -> list[QuietAlert]:
    """The alerts of ``b``'s period in ``st`` whose condition does not hold at ``ts``: those
    :func:`rearm` would fire again, were ``b`` the budget's new definition.

    >>> st = BurnState(0.0, 86400.0)
    >>> st.add(0.0, 9.0, 1)
    >>> b = Budget("b", "team", "search", "day", 100.0)  # $9 of $100, forecast $220
    >>> [q.label_id == str(uuid.uuid5(_NAMESPACE, f"budget|b|1970-01-01T00:00:00Z|{label}"))
    ...  for q, label in zip(quiet_alerts(b, st, 1800.0), ["0.8", "1"], strict=True)]
    [True, True]
    """
    holding = _holding_labels(b, st, ts)
    labels = [threshold_label(th) for th in b.alert_thresholds] + [FORECAST_LABEL]
    period = iso_utc(st.period_start)
    quiet = []
    for label in labels:
        if label not in holding:
            key = str(uuid.uuid5(_NAMESPACE, _label_key(b.id, period, label)))
            quiet.append(QuietAlert(key, rearmed_id(key, b.limit_usd)))
    return quiet


def threshold_label(threshold: float) -> str:
    """The ``fired`` label (and alert-id part) of a threshold alert.

    >>> threshold_label(0.8), threshold_label(1.0)
    ('0.8', '1')
    """
    return f"{threshold:g}"


def check_alerts(b: Budget, st: BurnState, ts: float) -> list[Alert]:
    """The alerts not yet fired in the period that the state at ``ts`` crosses (now marked
    fired in ``st``): thresholds in increasing order, then the forecast.

    >>> st = BurnState(0.0, 86400.0)
    >>> st.add(0.0, 9.0, 1)
    >>> b = Budget("b", "team", "search", "day", 10.0)
    >>> [a.details["alert_type"] for a in check_alerts(b, st, 1800.0)]
    ['threshold', 'forecast_exceeds']
    >>> check_alerts(b, st, 1800.0), st.fired
    ([], ['0.8', 'forecast'])
    """
    forecast = st.forecast(ts)
    alerts = _threshold_alerts(b, st, ts, forecast)
    if FORECAST_LABEL not in st.fired and st.spend < b.limit_usd and forecast > b.limit_usd:
        st.fired.append(FORECAST_LABEL)
        alerts.append(_forecast_alert(b, st, ts, forecast))
    return alerts


def rearm(b: Budget, st: BurnState, ts: float) -> None:
    """Keep fired only the alerts whose condition still holds for ``b``, a budget replaced
    with another limit or thresholds in the period of ``st``: the others fire again when
    the spend crosses them.

    >>> st = BurnState(0.0, 86400.0)
    >>> st.add(0.0, 9.0, 1)
    >>> _ = check_alerts(Budget("b", "team", "search", "day", 10.0), st, 1800.0)
    >>> st.fired, round(st.forecast(1800.0))  # $9 in the day's first half hour
    (['0.8', 'forecast'], 220)
    >>> rearm(Budget("b", "team", "search", "day", 100.0), st, 1800.0)
    >>> st.fired  # $9 is under 80 % of $100; $220 is still over it
    ['forecast']
    >>> rearm(Budget("b", "team", "search", "day", 1000.0), st, 1800.0)
    >>> st.fired
    []
    >>> [a.details["alert_type"] for a in check_alerts(Budget("b", "team", "search", "day",
    ...                                                         11.0), st, 1800.0)]
    ['threshold', 'forecast_exceeds']
    """
    holding = _holding_labels(b, st, ts)
    st.fired = [label for label in st.fired if label in holding]


def _holding_labels(b: Budget, st: BurnState, ts: float) -> set[str]:
    """The labels of the alerts whose condition holds at ``ts``: a threshold the spend
    reached, the forecast while over the limit (or the spend at or past it)."""
    holding = {threshold_label(th) for th in b.alert_thresholds if st.spend >= th * b.limit_usd}
    if st.spend >= b.limit_usd or st.forecast(ts) > b.limit_usd:
        holding.add(FORECAST_LABEL)
    return holding


def _threshold_alerts(b: Budget, st: BurnState, ts: float, forecast: float) -> list[Alert]:
    alerts: list[Alert] = []
    for th in b.alert_thresholds:
        label = threshold_label(th)
        if label not in st.fired and st.spend >= th * b.limit_usd:
            st.fired.append(label)
            pct = round(th * 100)
            alerts.append(
                _alert(
                    b,
                    st,
                    ts,
                    "threshold",
                    label,
                    th,
                    forecast,
                    "critical" if th >= 1.0 else "warning",
                    f"{b.scope} {b.subject!r} has spent {usd(st.spend)}, {pct}% or more of "
                    f"its {usd(b.limit_usd)} {b.period} budget "
                    f"(period from {iso_utc(st.period_start)[:10]})",
                )
            )
    return alerts


def _forecast_alert(b: Budget, st: BurnState, ts: float, forecast: float) -> Alert:
    left_h = (b.limit_usd - st.spend) / max(st.rates(ts)[0], 1e-18) / HOUR
    return _alert(
        b,
        st,
        ts,
        "forecast_exceeds",
        FORECAST_LABEL,
        1.0,
        forecast,
        "warning",
        f"{b.scope} {b.subject!r} is forecast to spend {usd(forecast)} against its "
        f"{usd(b.limit_usd)} {b.period} budget; at the current burn rate it breaks "
        f"in about {left_h:.1f} h, before the period ends at "
        f"{iso_utc(st.period_end)}",
    )


def _alert(
    b: Budget,
    st: BurnState,
    ts: float,
    alert_type: str,
    label: str,
    threshold: float,
    forecast: float,
    severity: str,
    message: str,
) -> Alert:
    return Alert(
        kind="budget",
        alert_id=alert_id(b.id, st.period_start, label, b.limit_usd),
        subject=b.subject,
        severity=severity,
        message=message,
        source=ALERT_SOURCE,
        details={
            "alert_type": alert_type,  # "threshold" | "forecast_exceeds"
            "budget_id": b.id,
            "scope": b.scope,
            "period": b.period,
            "threshold": threshold,
            "spend_usd": st.spend,
            "limit_usd": b.limit_usd,
            "forecast_usd": forecast,
            "period_start": iso_utc(st.period_start),
            "period_end": iso_utc(st.period_end),
            "time": iso_utc(ts),
        },
    )
