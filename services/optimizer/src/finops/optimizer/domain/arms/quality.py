"""The posterior over an arm's mean quality: :class:`QualityPosterior`."""

from __future__ import annotations

__all__ = ["QualityPosterior"]


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
