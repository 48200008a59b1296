"""Per-arm online statistics used by the routing policy.

An *arm* is one way of serving a request: a ``(model, provider, config-id)`` triple, written as
the string ``"model|provider|config"`` (its identity is :class:`.arm_identity.Arm`).  For every
``(task_type, arm)`` pair the policy keeps an :class:`ArmStats`, which bundles

* :class:`QualityPosterior` -- a conjugate (Beta-like / Normal) posterior over mean quality whose
  prior is supplied at query time (hierarchical shrinkage towards the arm's family-wide mean),
* :class:`CostModel` -- expected cost of a request, linear in the prompt's input tokens,
* :class:`LatencyWindow` -- a sliding-window latency sketch giving the mean and the p95,
* three :class:`DriftMonitor` (quality, log-latency, log-cost residual), each a
  :class:`river.drift.PageHinkley` detector run on standardised values.

Everything here is pure Python, O(1) per update (except the lazily sorted latency window) and
serialises to plain JSON-able dicts with ``to_state`` / ``from_state``.
"""

from __future__ import annotations

import math
from typing import Any

from river import drift

__all__ = [
    "ArmStats",
    "CostModel",
    "DriftMonitor",
    "LatencyWindow",
    "QualityPosterior",
]


#: river's default forgetting factor of Page-Hinkley, the one checkpoints without ``"forget"``
#: were written with
RIVER_FORGETTING = 1.0 - 1e-4


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _none_to(x: float | None, default: float) -> float:
    return default if x is None else x


class QualityPosterior:
    """Posterior over an arm's mean quality in [0, 1] (Normal approximation of a Beta).

    Sufficient statistics are the (possibly discounted) count ``n``, the running mean and the sum
    of squared deviations ``m2``.  The prior -- mean ``p0``, strength ``m`` pseudo-observations and
    per-observation variance ``v0`` -- is passed at query time so that it can be re-estimated
    (empirical Bayes) without touching the data.  For 0/1 qualities with ``v0 = p0 (1 - p0)`` this
    matches the mean and variance of a ``Beta(m p0 + s, m (1 - p0) + n - s)`` posterior.

    Examples
    --------
    >>> post = QualityPosterior()
    >>> for q in [1, 1, 0, 1]:
    ...     post.add(q)
    >>> round(post.mean(p0=0.5, m=2.0), 4)
    0.6667
    >>> post.discount(keep=1.0)
    >>> post.n
    1.0
    """

    __slots__ = ("m2", "mu", "n")

    def __init__(self, n: float = 0.0, mu: float = 0.0, m2: float = 0.0) -> None:
        self.n = n
        self.mu = mu
        self.m2 = m2

    def add(self, q: float, w: float = 1.0) -> None:
        self.n += w
        d = q - self.mu
        self.mu += (w / self.n) * d
        self.m2 += w * d * (q - self.mu)

    def mean(self, p0: float, m: float) -> float:
        return (self.n * self.mu + m * p0) / (self.n + m)

    def observation_variance(self, p0: float, m: float, v0: float, between: bool = True) -> float:
        """Per-observation variance: the data's spread and the prior's pooled, with the
        distance between the data's mean and the prior's (the normal-inverse-gamma update;
        ``between`` ``False``: without it, as checkpoints written before it was added)."""
        n = self.n
        if n + m <= 0:
            return 0.25
        pooled = self.m2 + m * v0
        if between:
            pooled += n * m * (self.mu - p0) ** 2 / (n + m)
        return pooled / (n + m)

    def variance(self, p0: float, m: float, v0: float, between: bool = True) -> float:
        """Posterior variance of the mean quality.

        Three failures of an arm whose prior says 0.8 leave it uncertain, not confidently poor:
        for 0/1 outcomes with ``v0 = p0 (1 - p0)`` this is the variance of the Beta posterior.

        Examples
        --------
        >>> post = QualityPosterior()
        >>> for q in [0, 0, 0]:
        ...     post.add(q)
        >>> mean = post.mean(p0=0.8, m=2.0)
        >>> round(mean, 2), round(post.variance(0.8, 2.0, 0.8 * 0.2) ** 0.5, 3)
        (0.32, 0.19)
        >>> beta_variance = mean * (1 - mean) / 6  # Beta(1.6, 3.4): prior 2 x (0.8, 0.2), 0 of 3
        >>> round(beta_variance, 6) == round(post.variance(0.8, 2.0, 0.16), 6)
        True
        >>> round(post.variance(0.8, 2.0, 0.16, between=False) ** 0.5, 3)  # without: too sure
        0.103
        """
        v_data = self.observation_variance(p0, m, v0, between)
        return max(v_data, 1e-6) / (self.n + m + 1.0)

    def discount(self, keep: float, mean: float | None = None, var: float | None = None) -> None:
        """Shrink the evidence to at most ``keep`` observations (used on drift).

        If ``mean`` is given (e.g. a recent exponentially weighted mean) the posterior is re-centred
        on it, so the post-change regime dominates immediately.
        """
        if self.n <= 0:
            return
        factor = min(1.0, keep / self.n)
        self.n *= factor
        self.m2 *= factor
        if mean is not None:
            self.mu = mean
            if var is not None:
                self.m2 = self.n * var

    def to_state(self) -> list[float]:
        return [self.n, self.mu, self.m2]

    @classmethod
    def from_state(cls, state: list[float]) -> QualityPosterior:
        return cls(*state)


class CostModel:
    """Expected request cost as ``mean_cost + slope * (input_tokens - mean_tokens)``.

    Keeps Welford co-moments of (tokens, cost) for one ``(task_type, arm)``.  The slope is pooled
    over all task types of the arm (a price per token does not depend on the task), see
    :meth:`ArmStats.expected_cost`.

    Examples
    --------
    >>> cm = CostModel()
    >>> for tok in [100, 200, 300]:
    ...     _ = cm.add(tok, 1e-3 + 1e-5 * tok)
    >>> round(cm.mean_cost, 6), round(cm.cxy / cm.cxx, 8)
    (0.003, 1e-05)
    """

    __slots__ = ("cxx", "cxy", "mean_cost", "mean_tok", "n")

    def __init__(self, n=0.0, mean_tok=0.0, mean_cost=0.0, cxy=0.0, cxx=0.0) -> None:
        self.n = n
        self.mean_tok = mean_tok
        self.mean_cost = mean_cost
        self.cxy = cxy
        self.cxx = cxx

    def add(self, tokens: float | None, cost: float) -> tuple[float, float]:
        """Add one observation; returns the increments of ``(cxy, cxx)``."""
        self.n += 1.0
        dc = cost - self.mean_cost
        self.mean_cost += dc / self.n
        if tokens is None:
            return 0.0, 0.0
        dt = tokens - self.mean_tok
        self.mean_tok += dt / self.n
        dxy = dt * (cost - self.mean_cost)
        dxx = dt * (tokens - self.mean_tok)
        self.cxy += dxy
        self.cxx += dxx
        return dxy, dxx

    def to_state(self) -> list[float]:
        return [self.n, self.mean_tok, self.mean_cost, self.cxy, self.cxx]

    @classmethod
    def from_state(cls, state: list[float]) -> CostModel:
        return cls(*state)


class LatencyWindow:
    """Sliding window of the last ``size`` latencies with a lazily computed p95.

    Examples
    --------
    >>> lw = LatencyWindow(size=100)
    >>> for i in range(1, 201):
    ...     lw.add(float(i))
    >>> lw.p95(), lw.mean()
    (196.0, 150.5)
    """

    __slots__ = ("_sorted", "buf", "pos", "q", "size", "total")

    def __init__(self, size: int = 256, q: float = 0.95) -> None:
        self.size = size
        self.q = q
        self.buf: list[float] = []
        self.pos = 0
        self.total = 0.0
        self._sorted: list[float] | None = None

    def __len__(self) -> int:
        return len(self.buf)

    def add(self, x: float) -> None:
        if len(self.buf) < self.size:
            self.buf.append(x)
        else:
            self.total -= self.buf[self.pos]
            self.buf[self.pos] = x
            self.pos = (self.pos + 1) % self.size
        self.total += x
        self._sorted = None

    def mean(self) -> float | None:
        return self.total / len(self.buf) if self.buf else None

    def p95(self) -> float | None:
        if not self.buf:
            return None
        if self._sorted is None:
            self._sorted = sorted(self.buf)
        s = self._sorted
        return s[min(len(s) - 1, int(self.q * len(s)))]

    def keep_recent(self, k: int) -> None:
        """Forget all but the ``k`` most recent values (used on latency drift)."""
        ordered = self.buf[self.pos :] + self.buf[: self.pos]
        self.buf = ordered[-k:] if k > 0 else []
        self.pos = 0
        self.total = sum(self.buf)
        self._sorted = None

    def to_state(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "q": self.q,
            "buf": list(self.buf),
            "pos": self.pos,
            "total": self.total,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LatencyWindow:
        lw = cls(size=state["size"], q=state["q"])
        lw.buf = list(state["buf"])
        lw.pos = state["pos"]
        lw.total = state["total"]
        return lw


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
        "clip",
        "delta",
        "forgetting",
        "last_direction",
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
        self.last_direction = 0

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
        mean_before = ph._x_mean.get()
        ph.update(z)
        if ph.drift_detected:
            self.last_direction = 1 if z > mean_before else -1
            self.reset()
            return True
        return False

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
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DriftMonitor:
        d, t, w, ms, c = state["p"]
        forgetting = state.get("forget", RIVER_FORGETTING)
        mon = cls(delta=d, threshold=t, warmup=int(w), min_scale=ms, clip=c, forgetting=forgetting)
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


class ArmStats:
    """Everything the policy knows about one arm on one task type.

    The quality posterior is over the arm's *task-level intercept*: when a contextual residual
    model is active, observations enter as ``quality - residual(x)`` so that the intercept is not
    biased by which prompts the policy happened to send to this arm (backfitting of the additive
    model ``q(x) = intercept(task, arm) + residual_arm(x)``).
    """

    __slots__ = (
        "cost",
        "cost_drift",
        "lat_drift",
        "latency",
        "n_drifts",
        "obs_sum",
        "prior",
        "prior_cap",
        "q_drift",
        "quality",
        "r_bar",
        "r_n",
        "recent_q",
        "recent_q2",
        "unobs_n",
        "unobs_r",
    )

    def __init__(
        self, latency_window: int = 256, drift_params: dict[str, Any] | None = None
    ) -> None:
        dp = drift_params or {}
        self.quality = QualityPosterior()
        self.cost = CostModel()
        self.latency = LatencyWindow(size=latency_window)
        self.recent_q: float | None = None  # EW mean of quality (recent regime)
        self.recent_q2: float | None = None  # EW mean of squared quality
        self.prior_cap: float | None = None  # max prior strength after a drift
        self.q_drift = DriftMonitor(**dp)
        self.lat_drift = DriftMonitor(**dp)
        self.cost_drift = DriftMonitor(**dp)
        self.n_drifts = 0
        # counterfactual bookkeeping for the fleet reference: realised quality when this arm
        # served, and count / summed contextual residual of the requests it did not serve
        self.obs_sum = 0.0
        self.unobs_n = 0.0
        # running mean of the contextual residual predictions over the task's requests
        self.r_bar = 0.0
        self.r_n = 0.0
        self.unobs_r = 0.0  # summed centred residual predictions of the requests not served
        # (p0, m, v0): prior mean, strength and per-observation variance; set by the policy
        self.prior: tuple[float, float, float] = (0.5, 2.0, 0.25)

    def effective_prior(self) -> tuple[float, float, float]:
        p0, m, v0 = self.prior
        if self.prior_cap is not None and m > self.prior_cap:
            m = self.prior_cap
        return p0, m, v0

    def mean_quality(self) -> float:
        p0, m, _ = self.effective_prior()
        return self.quality.mean(p0, m)

    def quality_var(self, between: bool = True) -> float:
        p0, m, v0 = self.effective_prior()
        return self.quality.variance(p0, m, v0, between)

    def counterfactual_total(
        self, use_residuals: bool = True, optimism: float = 0.0, between: bool = True
    ) -> float:
        """Estimated total quality this arm would have delivered on all requests of its task.

        ``optimism`` shifts the mean used for the requests the arm did not serve by that many
        posterior standard deviations (see ``PolicyConfig.ref_optimism``; ``between``: see
        :meth:`QualityPosterior.observation_variance`).
        """
        mean = self.mean_quality()
        if optimism:
            mean += optimism * math.sqrt(self.quality_var(between))
        t = self.obs_sum + self.unobs_n * mean
        return t + self.unobs_r if use_residuals else t

    def rebase_counterfactual(self) -> None:
        """Freeze the counterfactual estimate (before the quality posterior is reset on drift)."""
        self.obs_sum = self.counterfactual_total()
        self.unobs_n = 0.0
        self.unobs_r = 0.0

    def add_recent(self, q: float, alpha: float) -> None:
        rq, rq2 = self.recent_q, self.recent_q2
        if rq is None or rq2 is None:
            self.recent_q, self.recent_q2 = q, q * q
        else:
            self.recent_q = rq + alpha * (q - rq)
            self.recent_q2 = rq2 + alpha * (q * q - rq2)

    def to_state(self) -> dict[str, Any]:
        return {
            "q": self.quality.to_state(),
            "c": self.cost.to_state(),
            "l": self.latency.to_state(),
            "rq": [self.recent_q, self.recent_q2],
            "cap": self.prior_cap,
            "dq": self.q_drift.to_state(),
            "dl": self.lat_drift.to_state(),
            "dc": self.cost_drift.to_state(),
            "nd": self.n_drifts,
            "ref": [self.obs_sum, self.unobs_n, self.unobs_r],
            "rbar": [self.r_bar, self.r_n],
            "prior": list(self.prior),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ArmStats:
        st = cls.__new__(cls)
        st.quality = QualityPosterior.from_state(state["q"])
        st.cost = CostModel.from_state(state["c"])
        st.latency = LatencyWindow.from_state(state["l"])
        st.recent_q, st.recent_q2 = state["rq"]
        st.prior_cap = state["cap"]
        st.q_drift = DriftMonitor.from_state(state["dq"])
        st.lat_drift = DriftMonitor.from_state(state["dl"])
        st.cost_drift = DriftMonitor.from_state(state["dc"])
        st.n_drifts = state["nd"]
        st.obs_sum, st.unobs_n, st.unobs_r = state["ref"]
        st.r_bar, st.r_n = state["rbar"]
        st.prior = tuple(state["prior"])
        return st
