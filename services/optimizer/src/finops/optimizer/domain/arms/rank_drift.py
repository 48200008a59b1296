"""Change detection on sequential ranks, for skewed streams: :class:`RankDriftMonitor`."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from typing import Any

__all__ = ["RankDriftMonitor"]

#: the ``"kind"`` of a :class:`RankDriftMonitor`'s state (a :class:`.DriftMonitor`'s has none)
RANKS_KIND = "ranks"

_SQRT12 = math.sqrt(12.0)


class RankDriftMonitor:
    """Two-sided CUSUM on the sequential ranks of a stream (McDonald 1990).

    Each value is ranked among the last ``window`` values before it (mid-ranks for ties); the
    rank, mapped to ``u`` in (0, 1) and standardised to ``(u - 1/2) sqrt(12)``, feeds two
    CUSUMs, one for a rise and one for a fall.  For independent values of one distribution,
    whatever its skew, tails or scale, the sequential ranks are independent uniforms: the
    false-alarm rate is that of a CUSUM on uniforms of mean 0 and variance 1, with nothing to
    estimate.  A shift makes the new values rank high (or low) against the older ones.

    Made for the log-cost residual ``log(cost / expected)``: it is skewed and heavy-tailed
    (the cost model is linear in input tokens only, and output tokens vary per prompt), and a
    scale estimated from its first values (:class:`.DriftMonitor`) is too wide while the cost
    model is still learning, too narrow for the tails of real costs.

    Parameters
    ----------
    window
        Ranks are taken among at most this many of the latest values (a shift must be found
        before the window is full of the new level: after that the new values rank as usual).
    settle
        Values after each (re)start that are neither tested nor kept: the cost model's early
        residuals are off as it learns (a trend the ranks would read as a change), and while
        its slope is rough the residual depends on the prompt's size, so an arm the router
        starts sending longer prompts to looks dearer (with 30, a cost alarm in one
        backtest replay of ten, the one-task set at 0.99; none with 100).
    allowance
        CUSUM reference value ``k``, in standard deviations of the standardised rank: each
        value lowers the sums by it (a shift moving the standardised ranks by ``2 k`` is the
        one the test is tuned to).
    threshold
        CUSUM alarm threshold ``h``: with ``k = 0.15`` and ``h = 35`` the average run length
        between false alarms of one side is ~10^6 values (Siegmund's approximation).
    digits
        Values are rounded to this many decimals as they come in (a checkpoint stores the
        window; 4 decimals of a log-cost is 0.01 % of a cost).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> mon = RankDriftMonitor()
    >>> skewed = [rng.lognormvariate(0.0, 1.0) for _ in range(600)]
    >>> risen = [1.5 * rng.lognormvariate(0.0, 1.0) for _ in range(300)]
    >>> alarms = [i for i, x in enumerate(skewed + risen) if mon.update(math.log(x))]
    >>> 600 < alarms[0] < 750, mon.last_direction
    (True, 1)
    """

    __slots__ = (
        "_arrived",
        "_down",
        "_seen",
        "_sorted",
        "_up",
        "allowance",
        "digits",
        "last_direction",
        "last_run_length",
        "settle",
        "threshold",
        "window",
    )

    def __init__(
        self,
        window: int = 512,
        settle: int = 100,
        allowance: float = 0.15,
        threshold: float = 35.0,
        digits: int = 4,
    ) -> None:
        self.window = window
        self.settle = settle
        self.allowance = allowance
        self.threshold = threshold
        self.digits = digits
        self._arrived: deque[float] = deque()
        self._sorted: list[float] = []
        self._seen = 0
        self._up = 0.0
        self._down = 0.0
        self.last_direction = 0
        #: the values tested from the (re)start to the last alarm, that one included (read
        #: right after the alarm; not checkpointed)
        self.last_run_length = 0

    def reset(self) -> None:
        self._arrived.clear()
        self._sorted.clear()
        self._seen = 0
        self._up = self._down = 0.0

    @property
    def settled(self) -> bool:
        """Whether the values after the (re)start that are not tested are all in."""
        return self._seen >= self.settle

    def standardised_rank(self, x: float) -> float:
        """The rank of ``x`` among the window, as a value of mean 0 and variance ~1 for a
        stationary stream (0 when the window is empty)."""
        m = len(self._sorted)
        below = bisect_left(self._sorted, x)
        ties = bisect_right(self._sorted, x) - below
        u = (below + 0.5 * ties + 0.5) / (m + 1)
        return (u - 0.5) * _SQRT12

    def update(self, x: float) -> bool:
        """Feed one value; ``True`` when a change is detected (the monitor then restarts)."""
        x = round(x, self.digits)
        self._seen += 1
        if self._seen <= self.settle:
            return False
        z = self.standardised_rank(x)
        self._up = max(0.0, self._up + z - self.allowance)
        self._down = max(0.0, self._down - z - self.allowance)
        if self._up > self.threshold or self._down > self.threshold:
            self.last_direction = 1 if self._up > self.threshold else -1
            self.last_run_length = self._seen - self.settle
            self.reset()
            return True
        self._keep(x)
        return False

    def _keep(self, x: float) -> None:
        self._arrived.append(x)
        insort(self._sorted, x)
        if len(self._arrived) > self.window:
            old = self._arrived.popleft()
            del self._sorted[bisect_left(self._sorted, old)]

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": RANKS_KIND,
            "p": [self.window, self.settle, self.allowance, self.threshold, self.digits],
            "seen": self._seen,
            "win": list(self._arrived),
            "cusum": [self._up, self._down],
            "dir": self.last_direction,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RankDriftMonitor:
        window, settle, allowance, threshold, digits = state["p"]
        mon = cls(int(window), int(settle), allowance, threshold, int(digits))
        mon._arrived = deque(state["win"])
        mon._sorted = sorted(mon._arrived)
        mon._seen = int(state["seen"])
        mon._up, mon._down = state["cusum"]
        mon.last_direction = state["dir"]
        return mon
