"""Spend anomalies per agent (pure domain code, no I/O).

Each agent's spend is summed into tumbling minute windows by event time. When a window closes
(the newest event time seen is past its end plus an allowed lateness) its spend is scored by
the agent's :class:`SpendSpikeScorer` -- a river anomaly detector (the
``river.base.SupervisedAnomalyDetector`` API, like ``river.anomaly.GaussianScorer``) on the
log of the minute spend -- and then learned. After a warm-up of ``grace_period`` active
minutes, a score at or above ``threshold`` raises an :class:`~finops.common.alerts.Alert` of
``kind="anomaly"`` (its ``details``: score, threshold, spend and expected spend, calls, window
start and end).

Choices
-------
* Only minutes in which the agent made calls are scored: an agent calling every few minutes
  would otherwise look like a zero series with spikes. A runaway loop shows as a large active
  minute.
* Log scale: spend is multiplicative (a 3x jump is as surprising at $0.01/min as at $10/min).
* The standard deviation has a floor (``min_sd``, default 0.25 in log units), so a perfectly
  steady agent is not flagged for a few percent of noise: at the default threshold of 4 the
  spend must be at least ``e^(4 x 0.25) ~ 2.7x`` its usual level.
* Spikes are learned clipped at ``clip_z`` standard deviations, so a lasting change of level
  is absorbed over a few dozen minutes without a single spike inflating the variance.
* One alert per agent per ``cooldown_windows`` minutes; ``alert_id`` is a UUID5 of agent and
  window start, so re-processing after a restart gives the same ids.
* Deterministic: no randomness at all (nothing to seed), so a replay gives the same alerts.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from river import base

from finops.common.alerts import Alert
from finops.optimizer.domain import ALERT_SOURCE
from finops.optimizer.domain.eventtime import epoch_seconds, iso_utc

__all__ = ["SpendAnomalyDetector", "SpendSpikeScorer"]

STATE_VERSION = 1
_NAMESPACE = uuid.UUID("0c5e2b8a-3f7d-4a61-b7c9-2d4e8f1a6b35")


class SpendSpikeScorer(base.SupervisedAnomalyDetector):
    """Upward robust z-score of a spend value against an exponentially weighted baseline.

    The target ``y`` (spend in USD of one window) is mapped to ``v = log(y + floor_usd)``; the
    model keeps an exponentially weighted mean and variance of ``v`` (weight
    ``max(alpha, 1/n)``, so the first ``1/alpha`` values are weighted equally). The score is
    ``max(0, (v - mean) / max(sd, min_sd))``; ``0`` during the grace period. ``x`` is ignored.

    Parameters
    ----------
    half_life
        Half-life of the baseline, in learned values.
    grace_period
        Number of learned values before which the score is always 0.
    floor_usd
        Added before the log (spend below it counts as about the same).
    min_sd
        Floor of the standard deviation, in log units.
    clip_z
        Values above ``mean + clip_z * sd`` are learned as that bound (after the grace
        period). ``None`` learns values as they are.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> scorer = SpendSpikeScorer(grace_period=30)
    >>> for _ in range(60):
    ...     scorer.learn_one(None, 0.05 * rng.uniform(0.8, 1.2))
    >>> round(scorer.score_one(None, 0.05), 2)
    0.1
    >>> round(scorer.score_one(None, 0.5), 2)
    9.24
    >>> scorer.score_one(None, 0.01)  # spending less is not an anomaly
    0.0
    >>> restored = SpendSpikeScorer.from_state(scorer.to_state())
    >>> restored.score_one(None, 0.5) == scorer.score_one(None, 0.5)
    True
    """

    def __init__(
        self,
        half_life: float = 60.0,
        grace_period: int = 30,
        floor_usd: float = 1e-3,
        min_sd: float = 0.25,
        clip_z: float | None = 6.0,
    ) -> None:
        self.half_life = half_life
        self.grace_period = grace_period
        self.floor_usd = floor_usd
        self.min_sd = min_sd
        self.clip_z = clip_z
        self._alpha = 1.0 - 0.5 ** (1.0 / max(half_life, 1e-9))
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    @property
    def sd(self) -> float:
        return max(math.sqrt(max(self.var, 0.0)), self.min_sd)

    def expected(self) -> float:
        """The baseline spend (geometric-mean-like) in USD."""
        return max(math.exp(self.mean) - self.floor_usd, 0.0) if self.n else 0.0

    def learn_one(self, x: Any, y: Any) -> None:
        v = math.log(max(float(y), 0.0) + self.floor_usd)
        if self.clip_z is not None and self.n >= self.grace_period:
            v = min(v, self.mean + self.clip_z * self.sd)
        self.n += 1
        a = max(self._alpha, 1.0 / self.n)
        d = v - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)

    def score_one(self, x: Any, y: Any) -> float:
        if self.n < self.grace_period:
            return 0.0
        v = math.log(max(float(y), 0.0) + self.floor_usd)
        return max((v - self.mean) / self.sd, 0.0)

    def to_state(self) -> list[float]:
        return [self.n, self.mean, self.var]

    @classmethod
    def from_state(cls, state: list[float], **params: Any) -> SpendSpikeScorer:
        s = cls(**params)
        s.n, s.mean, s.var = int(state[0]), float(state[1]), float(state[2])
        return s


class SpendAnomalyDetector:
    """Per-agent minute spend windows scored by a :class:`SpendSpikeScorer` each.

    Parameters
    ----------
    threshold
        Score (robust z) at or above which a window is an anomaly.
    window_seconds
        Window length (60: minutes).
    allowed_lateness_s
        A window closes once the newest event time seen passes its end by this much.
    cooldown_windows
        After an alert, that agent's next alerts are suppressed for this many windows.
    min_excess_usd
        Also require ``spend - expected >= min_excess_usd`` (ignore sub-cent spikes).
    scorer_params
        Keyword arguments of every agent's :class:`SpendSpikeScorer`.

    Examples
    --------
    >>> from datetime import datetime, timedelta, timezone
    >>> t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    >>> det = SpendAnomalyDetector(scorer_params={"grace_period": 30})
    >>> alerts = []
    >>> for minute in range(60):
    ...     spend = 0.5 if minute == 45 else 0.05 + 0.005 * (minute % 3)
    ...     alerts += det.observe_cost("bot", t0 + timedelta(minutes=minute, seconds=5), spend)
    >>> alerts += det.flush()
    >>> [(a.subject, a.details["window_start"], a.severity) for a in alerts]
    [('bot', '2025-01-01T00:45:00Z', 'critical')]
    """

    def __init__(
        self,
        threshold: float = 4.0,
        window_seconds: int = 60,
        allowed_lateness_s: float = 5.0,
        cooldown_windows: int = 5,
        min_excess_usd: float = 0.01,
        scorer_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.threshold = float(threshold)
        self.window_seconds = int(window_seconds)
        self.allowed_lateness_s = float(allowed_lateness_s)
        self.cooldown_windows = int(cooldown_windows)
        self.min_excess_usd = float(min_excess_usd)
        self.scorer_params: dict[str, Any] = dict(scorer_params or {})
        self._scorers: dict[str, SpendSpikeScorer] = {}
        self._open: dict[tuple[str, int], list[float]] = {}  # (agent, start) -> [spend, calls]
        self._closed_upto: dict[str, int] = {}  # agent -> start of its last closed window
        self._last_alert: dict[str, int] = {}  # agent -> window start of its last alert
        self._watermark: float | None = None
        self._next_check = math.inf
        self.late = 0
        self.windows_scored = 0

    # ------------------------------------------------------------------ ingestion
    def observe(self, event: Any) -> list[Alert]:
        """Add one ``LlmCallEvent``'s cost (unpriced: 0) to its agent's window."""
        d = event.data
        return self.observe_cost(d.agent_id, event.time.timestamp(), d.cost_usd)

    def observe_cost(
        self, agent_id: str, time: datetime | float, cost_usd: float | None
    ) -> list[Alert]:
        """Add spend at ``time``; returns the alerts of the windows this closes."""
        ts = epoch_seconds(time)
        size = self.window_seconds
        start = int(ts // size) * size
        closed = self._closed_upto.get(agent_id)
        if closed is not None and start <= closed:
            self.late += 1
        else:
            key = (agent_id, start)
            w = self._open.get(key)
            if w is None:
                w = self._open[key] = [0.0, 0]
                self._next_check = min(self._next_check, start + size + self.allowed_lateness_s)
            w[0] += cost_usd or 0.0
            w[1] += 1
        if self._watermark is None or ts > self._watermark:
            self._watermark = ts
        if self._watermark >= self._next_check:
            return self._close_until(self._watermark)
        return []

    def flush(self, until: datetime | float | None = None) -> list[Alert]:
        """Close every open window (or those whose end + lateness <= ``until``)."""
        return self._close_until(math.inf if until is None else epoch_seconds(until))

    def _close_until(self, now: float) -> list[Alert]:
        size = self.window_seconds
        lateness = self.allowed_lateness_s
        due = sorted(
            (start, agent) for (agent, start) in self._open if start + size + lateness <= now
        )
        alerts = []
        for start, agent in due:
            spend, calls = self._open.pop((agent, start))
            self._closed_upto[agent] = max(self._closed_upto.get(agent, start), start)
            alert = self.close_window(agent, start, spend, int(calls))
            if alert is not None:
                alerts.append(alert)
        self._next_check = min((s + size + lateness for (_, s) in self._open), default=math.inf)
        return alerts

    def close_window(
        self, agent_id: str, window_start: datetime | float, spend_usd: float, calls: int = 1
    ) -> Alert | None:
        """Score then learn one closed window of an agent (for callers that aggregate
        windows themselves); the alert, if it is an anomaly."""
        start = epoch_seconds(window_start)
        scorer = self._scorers.get(agent_id)
        if scorer is None:
            scorer = self._scorers[agent_id] = SpendSpikeScorer(**self.scorer_params)
        score = scorer.score_one(None, spend_usd)
        expected = scorer.expected()
        scorer.learn_one(None, spend_usd)
        self.windows_scored += 1
        if score < self.threshold or spend_usd - expected < self.min_excess_usd:
            return None
        last = self._last_alert.get(agent_id)
        istart = int(start)
        if last is not None and istart - last <= self.cooldown_windows * self.window_seconds:
            return None
        self._last_alert[agent_id] = istart
        ratio = spend_usd / expected if expected > 0 else math.inf
        return Alert(
            kind="anomaly",
            alert_id=str(uuid.uuid5(_NAMESPACE, f"anomaly|{agent_id}|{iso_utc(start)}")),
            subject=agent_id,
            severity="critical" if score >= 2 * self.threshold else "warning",
            message=(
                f"agent {agent_id!r} spent ${spend_usd:.4f} in the {self.window_seconds}s "
                f"window from {iso_utc(start)}, {ratio:.1f}x its usual ${expected:.4f} "
                f"(score {score:.1f} >= {self.threshold:g})"
            ),
            source=ALERT_SOURCE,
            details={
                "score": score,
                "threshold": self.threshold,
                "spend_usd": spend_usd,
                "expected_usd": expected,
                "calls": calls,
                "window_start": iso_utc(start),
                "window_end": iso_utc(start + self.window_seconds),
            },
        )

    def score(self, agent_id: str, spend_usd: float) -> float:
        """What a window with this spend would score for this agent now (no learning)."""
        scorer = self._scorers.get(agent_id)
        return 0.0 if scorer is None else scorer.score_one(None, spend_usd)

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "params": {
                "threshold": self.threshold,
                "window_seconds": self.window_seconds,
                "allowed_lateness_s": self.allowed_lateness_s,
                "cooldown_windows": self.cooldown_windows,
                "min_excess_usd": self.min_excess_usd,
                "scorer_params": dict(self.scorer_params),
            },
            "scorers": {a: s.to_state() for a, s in sorted(self._scorers.items())},
            "open": [[a, s, w[0], w[1]] for (a, s), w in sorted(self._open.items())],
            "closed_upto": dict(sorted(self._closed_upto.items())),
            "last_alert": dict(sorted(self._last_alert.items())),
            "watermark": self._watermark,
            "late": self.late,
            "windows_scored": self.windows_scored,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SpendAnomalyDetector:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported anomaly state version {state.get('version')!r}")
        det = cls(**state["params"])
        det._scorers = {
            a: SpendSpikeScorer.from_state(s, **det.scorer_params)
            for a, s in state["scorers"].items()
        }
        det._open = {(a, int(s)): [float(sp), int(c)] for a, s, sp, c in state["open"]}
        det._closed_upto = {a: int(s) for a, s in state["closed_upto"].items()}
        det._last_alert = {a: int(s) for a, s in state["last_alert"].items()}
        det._watermark = state["watermark"]
        det.late = state["late"]
        det.windows_scored = state["windows_scored"]
        det._next_check = min(
            (s + det.window_seconds + det.allowed_lateness_s for (_, s) in det._open),
            default=math.inf,
        )
        return det
