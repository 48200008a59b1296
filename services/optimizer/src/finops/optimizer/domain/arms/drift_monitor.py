"""Page-Hinkley change detection on a standardised stream: :class:`DriftMonitor`."""

from __future__ import annotations

import math
from typing import Any

from river import drift

__all__ = ["RIVER_FORGETTING", "DriftMonitor", "RunningSpread"]


#: river's default forgetting factor of Page-Hinkley, the one checkpoints without ``"forget"``
#: were written with
RIVER_FORGETTING = 1.0 - 1e-4


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _none_to(x: float | None, default: float) -> float:
    return default if x is None else x


class RunningSpread:
    """Running mean and variance of a stream (Welford's update): the scale a
    :class:`DriftMonitor` keeps learning after its warm-up (``running_scale``).

    Examples
    --------
    >>> spread = RunningSpread()
    >>> for x in (1.0, 2.0, 3.0, 4.0):
    ...     spread.add(x)
    >>> spread.n, spread.mean, round(spread.sd(), 4)
    (4, 2.5, 1.291)
    """

    __slots__ = ("m2", "mean", "n")

    def __init__(self, n: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.n = n
        self.mean = mean
        #: sum of squared deviations from the running mean
        self.m2 = m2

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def sd(self) -> float:
        """The sample standard deviation (0 before two values)."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0

    def to_state(self) -> list[float]:
        return [self.n, self.mean, self.m2]

    @classmethod
    def from_state(cls, state: list[float]) -> RunningSpread:
        n, mean, m2 = state
        return cls(int(n), mean, m2)


class DriftMonitor:
    """Page-Hinkley change detector on a standardised stream.

    The first ``warmup`` values estimate the stream's location and scale; afterwards every value
    is standardised with them, winsorised to +/- ``clip`` and fed to
    :class:`river.drift.PageHinkley` (which tracks its own running mean), so that
    ``delta`` and ``threshold`` are in standard-deviation units and the same settings work for
    quality, log-latency and log-cost.

    Parameters
    ----------
    delta
        Tolerated drift magnitude, in standard deviations.
    threshold
        Page-Hinkley alarm threshold, in standard deviations.
    warmup
        Number of values used to estimate the scale before testing starts.
    min_scale
        Lower bound on the scale (avoids dividing by ~0 for near-constant streams).
    clip
        Winsorisation bound of the standardised values.
    forgetting
        Forgetting factor of the Page-Hinkley sums.  ``1`` is Page's test: the sums of a
        stationary stream drift away from the threshold by ``delta`` per value, and with the
        defaults the average run length between false alarms is ~10^5 values.  Below 1 the sums
        fade towards a fixed level, they stop drifting away, and false alarms come every ~10^4
        values of a stationary stream (river's default, :data:`RIVER_FORGETTING`, kept for
        checkpoints written with it).
    running_scale
        Keep learning the scale after the warm-up: each value is standardised with the
        standard deviation of every value since the (re)start before it (:class:`RunningSpread`;
        a value enters it winsorised to ``clip`` of that scale, so one outlier does not blunt
        the monitor).  The scale of 30 values is off by ~13 % (one standard deviation), and
        the false-alarm rate grows exponentially as the scale shrinks: on stationary
        log-latencies, the arms whose first 30 values came out 15 % less spread than the
        stream (one in seven) raised a false alarm within 10,000 values in seven cases of ten
        with the frozen scale, in one of seven with the running one.  A change right after
        the warm-up is found a little later (its values widen the scale too).  ``False`` (the
        default: the quality monitor, the cost monitor of checkpoints written before
        :class:`.RankDriftMonitor` took its place, and checkpoints written before) freezes the
        warm-up's scale.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> mon = DriftMonitor()
    >>> before = [float(rng.random() < 0.9) for _ in range(300)]
    >>> after = [float(rng.random() < 0.3) for _ in range(300)]
    >>> stream = before + after
    >>> detected = [i for i, q in enumerate(stream) if mon.update(q)]
    >>> 300 <= detected[0] < 360
    True
    """

    __slots__ = (
        "_buf",
        "_center",
        "_ph",
        "_scale",
        "_spread",
        "clip",
        "delta",
        "forgetting",
        "last_direction",
        "last_run_length",
        "min_scale",
        "threshold",
        "warmup",
    )

    def __init__(
        self,
        delta: float = 0.1,
        threshold: float = 40.0,
        warmup: int = 30,
        min_scale: float = 0.05,
        clip: float = 3.0,
        forgetting: float = RIVER_FORGETTING,
        running_scale: bool = False,
    ) -> None:
        self.delta = delta
        self.forgetting = forgetting
        self.threshold = threshold
        self.warmup = warmup
        self.min_scale = min_scale
        self.clip = clip
        self._buf: list[float] | None = []
        self._center = 0.0
        self._scale = 1.0
        self._ph: drift.PageHinkley | None = None
        #: the values seen since the (re)start, when the scale keeps learning from them
        self._spread: RunningSpread | None = RunningSpread() if running_scale else None
        self.last_direction = 0
        #: the values from the monitor's (re)start to its last alarm, that one included: the
        #: change it found lies among them (read right after the alarm; not checkpointed)
        self.last_run_length = 0

    @property
    def running_scale(self) -> bool:
        """Whether the scale keeps learning after the warm-up (see the parameter)."""
        return self._spread is not None

    def _make_ph(self) -> drift.PageHinkley:
        return drift.PageHinkley(
            min_instances=self.warmup,
            delta=self.delta,
            threshold=self.threshold,
            alpha=self.forgetting,
        )

    def reset(self) -> None:
        self._buf = []
        self._center = 0.0
        self._scale = 1.0
        self._ph = None
        if self._spread is not None:
            self._spread = RunningSpread()

    def update(self, x: float, scale: float | None = None) -> bool:
        """Feed one value; ``True`` when a change is detected (the monitor then restarts).

        ``scale``, if given, standardises this value instead of the scale estimated on the
        warm-up values: e.g. the Bernoulli standard deviation ``sqrt(p (1 - p))`` of the current
        estimate ``p`` of a quality in [0, 1] -- the largest a stream with that mean can have,
        so the alarm threshold keeps its false-alarm rate whatever the first values were.
        """
        if self._buf is not None:
            self._buf.append(x)
            if len(self._buf) < self.warmup:
                return False
            n = len(self._buf)
            mean = sum(self._buf) / n
            var = sum((v - mean) ** 2 for v in self._buf) / max(1, n - 1)
            self._center = mean
            self._scale = max(math.sqrt(var), self.min_scale)
            if self._spread is not None:
                self._spread = RunningSpread(n, mean, var * max(1, n - 1))
            self._ph = self._make_ph()
            buf, self._buf = self._buf, None
            ph = self._ph
            for v in buf:  # replay; PH does not test before ``min_instances`` values
                ph.update(self._standardised(v, scale))
            ph._drift_detected = False  # never alarm on the warm-up sample itself
            return False
        return self._feed(x, scale)

    def _standardised(self, x: float, scale: float | None) -> float:
        s = self._scale if scale is None else max(scale, self.min_scale)
        z = (x - self._center) / s
        return self.clip if z > self.clip else (-self.clip if z < -self.clip else z)

    def _feed(self, x: float, scale: float | None) -> bool:
        z = self._standardised(x, scale)
        ph = self._ph
        assert ph is not None
        ph.update(z)
        if ph.drift_detected:
            # the test that fired (with a forgetting factor below 1 the value that tips a rise
            # over the threshold may lie below the running mean)
            rose = ph._sum_increase - ph._min_increase > ph.threshold
            self.last_direction = 1 if rose else -1
            self.last_run_length = int(ph._x_mean.n)
            self.reset()
            return True
        if self._spread is not None:
            self._learn_scale(x)
        return False

    def _learn_scale(self, x: float) -> None:
        """Add ``x``, winsorised to ``clip`` times the current scale around the running mean,
        to the spread, and standardise the next values with the spread's deviation."""
        spread = self._spread
        assert spread is not None
        bound = self.clip * self._scale
        spread.add(min(max(x, spread.mean - bound), spread.mean + bound))
        self._scale = max(spread.sd(), self.min_scale)

    def to_state(self) -> dict[str, Any]:
        ph = self._ph
        ph_state = None
        if ph is not None:
            ph_state = [
                ph._x_mean.n,
                ph._x_mean._mean,
                ph._sum_increase,
                ph._sum_decrease,
                _finite_or_none(ph._min_increase),
                ph._max_decrease,
            ]
        state = {
            "p": [self.delta, self.threshold, self.warmup, self.min_scale, self.clip],
            "buf": None if self._buf is None else list(self._buf),
            "center": self._center,
            "scale": self._scale,
            "ph": ph_state,
            "dir": self.last_direction,
        }
        if self.forgetting != RIVER_FORGETTING:  # a checkpoint without it used river's
            state["forget"] = self.forgetting
        if self._spread is not None:  # a checkpoint without it froze the warm-up's scale
            state["spread"] = self._spread.to_state()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DriftMonitor:
        d, t, w, ms, c = state["p"]
        forgetting = state.get("forget", RIVER_FORGETTING)
        mon = cls(delta=d, threshold=t, warmup=int(w), min_scale=ms, clip=c, forgetting=forgetting)
        spread = state.get("spread")
        mon._spread = None if spread is None else RunningSpread.from_state(spread)
        mon._buf = None if state["buf"] is None else list(state["buf"])
        mon._center = state["center"]
        mon._scale = state["scale"]
        mon.last_direction = state["dir"]
        if state["ph"] is not None:
            n, mean, si, sd, mi, md = state["ph"]
            ph = mon._make_ph()
            ph._x_mean.n = n
            ph._x_mean._mean = mean
            ph._sum_increase = si
            ph._sum_decrease = sd
            ph._min_increase = _none_to(mi, float("inf"))
            ph._max_decrease = md
            mon._ph = ph
        return mon
