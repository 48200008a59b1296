"""The per-arm contextual quality model: how an arm does on a *particular* prompt.

:class:`ResidualQualityModel` is a river regressor that learns, online and from bandit feedback
only, how an arm's quality on a *particular* prompt deviates from the arm's mean quality on the
prompt's task type.  The routing policy adds this residual to the task-level posterior mean, so
the choice becomes per prompt.  Its inputs are the request features of
:func:`~finops.optimizer.domain.features.prompt_features`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np
from river import base, linear_model, preprocessing

from .features import COST_FEATURE

__all__ = ["ResidualQualityModel"]

_BIAS = "__bias__"


class ResidualQualityModel(base.Regressor):
    """Online Bayesian linear model of an arm's per-prompt quality residual.

    The target is ``quality - mean_quality(task_type, arm)``: how much better or worse than
    usual the arm does on this prompt.  Features are standardised online
    (:class:`river.preprocessing.StandardScaler`, then winsorised) and fed to a
    :class:`river.linear_model.BayesianLinearRegression` (exact conjugate ridge posterior,
    Sherman-Morrison rank-one updates).  Unlike SGD, weak or absent effects stay close to zero
    instead of wandering with the step size -- important because the policy turns these
    predictions into routing decisions.

    How much to trust the features is learned, not set: :meth:`optimise_prior` re-estimates the
    weight prior precision ``alpha`` and the noise precision ``beta`` by maximising the marginal
    likelihood (MacKay's evidence fixed point, Bishop 2006, sec. 3.5) from the sufficient
    statistics kept alongside the river model.  When the features carry no signal for this arm
    ``alpha`` grows and the predictions shrink to zero; when they do, they are used.

    Parameters
    ----------
    prior_variance
        Initial prior variance of each weight (standardised features).
    noise_variance
        Initial variance of the residual noise (``p (1 - p)`` for 0/1 qualities).
    clip
        Predictions are clipped to ``[-clip, clip]``.
    winsor
        Standardised feature values are clipped to ``[-winsor, winsor]`` (rare feature values
        must not produce extreme predictions).
    warmup
        Number of observations before predictions are non-zero.
    ignore
        Feature names not used by the model (by default the raw token count, which is
        heavy-tailed; its logarithm is a separate feature).
    prior_variance_bounds
        Range allowed for the evidence-optimised prior variance.
    bias
        Add a constant input.  The targets of an arm are measured on the prompts the policy sent
        to it, so their mean need not be zero; without a bias term that offset would be
        explained by whichever features correlate with the routing, biasing the slopes.

    Examples
    --------
    >>> import random
    >>> from finops.optimizer.domain.residual_quality import ResidualQualityModel
    >>> rng = random.Random(0)
    >>> model = ResidualQualityModel(warmup=20)
    >>> for _ in range(2000):
    ...     x = {"length": rng.random(), "noise": rng.random()}
    ...     p = 0.9 if x["length"] < 0.5 else 0.5        # long prompts are harder
    ...     y = float(rng.random() < p) - 0.7             # residual around the mean 0.7
    ...     model.learn_one(x, y)
    >>> model.optimise_prior()
    >>> short = model.predict_one({"length": 0.1, "noise": 0.5})
    >>> long_ = model.predict_one({"length": 0.9, "noise": 0.5})
    >>> short > 0.1 and long_ < -0.1
    True

    Features without signal are switched off by the evidence:

    >>> noise_only = ResidualQualityModel(warmup=20)
    >>> for _ in range(2000):
    ...     noise_only.learn_one({"noise": rng.random()}, float(rng.random() < 0.7) - 0.7)
    >>> noise_only.optimise_prior()
    >>> abs(noise_only.predict_one({"noise": 0.99})) < 0.01
    True

    The state is plain data:

    >>> clone = ResidualQualityModel.from_state(model.to_state())
    >>> x = {"length": 0.3, "noise": 0.2}
    >>> clone.predict_one(x) == model.predict_one(x)
    True
    """

    def __init__(
        self,
        prior_variance: float = 0.002,
        noise_variance: float = 0.2,
        clip: float = 0.3,
        warmup: int = 30,
        ignore: tuple[str, ...] = (COST_FEATURE,),
        winsor: float = 3.0,
        prior_variance_bounds: tuple[float, float] = (1e-6, 0.02),
        bias: bool = True,
    ) -> None:
        self.bias = bias
        self.prior_variance = prior_variance
        self.noise_variance = noise_variance
        self.clip = clip
        self.warmup = warmup
        self.ignore = tuple(ignore)
        self.winsor = winsor
        self.prior_variance_bounds = tuple(prior_variance_bounds)
        self.n = 0
        self._scaler = preprocessing.StandardScaler()
        # river follows Bishop: ``alpha`` is the prior *precision* of the weights
        self._blr = linear_model.BayesianLinearRegression(
            alpha=1.0 / prior_variance, beta=1.0 / noise_variance
        )
        # sufficient statistics (in the BLR's feature order) for evidence maximisation
        self._xtx = np.zeros((0, 0))
        self._xty = np.zeros(0)
        self._yty = 0.0
        self._n_fit = 0  # observations at the last ``optimise_prior``
        # prequential calibration: out-of-sample predictions d vs. realised residuals y
        self._cal = [0.0, 0.0, 0.0, 0.0, 0.0]  # n, sum d, sum d^2, sum y, sum d*y
        self._form: tuple[float, list[tuple[Any, float, float, float]]] | None = None

    def _select(self, x: dict[str, float]) -> dict[str, float]:
        if not self.ignore:
            return x
        ign = self.ignore
        return {k: v for k, v in x.items() if k not in ign}

    def _standardise(self, x: dict[str, float]) -> dict[str, float]:
        z = self._scaler.transform_one(x)
        lim = self.winsor
        for k, v in z.items():
            if v > lim:
                z[k] = lim
            elif v < -lim:
                z[k] = -lim
        if self.bias:
            z[_BIAS] = 1.0
        return z

    def learn_one(self, x: dict[Any, Any], y: float) -> None:
        x = self._select(x)
        self._scaler.learn_one(x)
        z = self._standardise(x)
        blr = self._blr
        blr.learn_one(z, y)
        cap = blr._cap
        if self._xty.shape[0] != cap:
            old = self._xty.shape[0]
            xtx = np.zeros((cap, cap))
            xtx[:old, :old] = self._xtx
            xty = np.zeros(cap)
            xty[:old] = self._xty
            self._xtx, self._xty = xtx, xty
        v = np.zeros(cap)
        idx = blr._idx
        for k, val in z.items():
            v[idx[k]] = val
        self._xtx += np.outer(v, v)
        self._xty += y * v
        self._yty += y * y
        self.n += 1
        self._form = None

    def _linear_form(self) -> tuple[float, list[tuple[Any, float, float, float]]]:
        """(bias, [(feature, mean, 1/std, weight)]): the fitted model as a flat linear form."""
        blr = self._blr
        blr._ensure_m()
        weights = blr._m_arr
        means, vars_ = self._scaler.means, self._scaler.vars
        bias = 0.0
        terms = []
        for name, i in blr._idx.items():
            w = float(weights[i])
            if name == _BIAS:
                bias = w
                continue
            var = vars_.get(name, 0.0)
            terms.append((name, means.get(name, 0.0), 1.0 / math.sqrt(var) if var else 0.0, w))
        return bias, terms

    def predict_one(self, x: dict[Any, Any]) -> float:
        """Predicted residual (same value as the river pipeline, via a cached linear form)."""
        if self.n < self.warmup:
            return 0.0
        form = self._form
        if form is None:
            form = self._form = self._linear_form()
        y, terms = form
        lim = self.winsor
        get = x.get
        for name, mean, inv_std, w in terms:
            v = get(name)
            if v is not None:
                z = (v - mean) * inv_std
                y += w * (lim if z > lim else (-lim if z < -lim else z))
        c = self.clip
        return c if y > c else (-c if y < -c else y)

    def observe_calibration(self, predicted: float, realised: float) -> None:
        """Record an out-of-sample prediction (made *before* ``learn_one``) and the outcome."""
        c = self._cal
        c[0] += 1.0
        c[1] += predicted
        c[2] += predicted * predicted
        c[3] += realised
        c[4] += predicted * realised

    def calibration(self, prior_n: float = 50.0) -> float:
        """Slope of realised on predicted residuals (1 = calibrated, <1 = over-confident).

        Estimated prequentially, so it measures how the predictions generalise; it is shrunk
        towards 0 with ``prior_n`` pseudo-observations and clipped to ``[0, 1]``.
        """
        n, sd, sdd, sy, sdy = self._cal
        if n < 2:
            return 0.0
        vxx = sdd - sd * sd / n
        if vxx <= 1e-12:
            return 0.0
        cxy = sdy - sd * sy / n
        slope = cxy / (vxx * (1.0 + prior_n / n))
        return 0.0 if slope < 0.0 else (1.0 if slope > 1.0 else slope)

    @property
    def needs_refit(self) -> bool:
        """Whether enough new data arrived since the last :meth:`optimise_prior`."""
        d = len(self._blr._idx)
        return self.n >= max(self.warmup, 10 * (d + 1)) and self.n >= 1.25 * self._n_fit + 10

    def optimise_prior(self, max_iter: int = 30) -> None:
        """Set ``alpha`` and ``beta`` to the evidence maximum and rebuild the posterior."""
        d = len(self._blr._idx)
        if d == 0 or self.n < 3:
            return
        cap = self._blr._cap
        xtx = self._xtx[:d, :d]
        xty = self._xty[:d]
        eig = np.linalg.eigvalsh(xtx)
        eig = np.clip(eig, 0.0, None)
        lo, hi = self.prior_variance_bounds
        a_min, a_max = 1.0 / hi, 1.0 / lo
        alpha = self._blr.alpha
        beta = self._blr.beta
        n = float(self.n)
        eye = np.eye(d)
        for _ in range(max_iter):
            cov = np.linalg.inv(alpha * eye + beta * xtx)
            m = beta * cov @ xty
            lam = beta * eig
            gamma = float(np.sum(lam / (alpha + lam)))
            mm = float(m @ m)
            new_alpha = gamma / mm if mm > 0 else a_max
            new_alpha = min(max(new_alpha, a_min), a_max)
            sse = self._yty - 2.0 * float(m @ xty) + float(m @ xtx @ m)
            new_beta = (n - gamma) / sse if sse > 0 and n > gamma else beta
            new_beta = min(max(new_beta, 1.0), 1e3)
            done = abs(new_alpha - alpha) <= 1e-3 * alpha and abs(new_beta - beta) <= 1e-3 * beta
            alpha, beta = new_alpha, new_beta
            if done:
                break
        blr = self._blr
        blr.alpha = alpha
        blr.beta = beta
        prec = np.eye(cap) * alpha
        prec[:d, :d] += beta * xtx
        blr._ss_arr = prec
        blr._ss_inv_arr = np.asfortranarray(np.linalg.inv(prec))
        eta = np.zeros(cap)
        eta[:d] = beta * xty
        blr._eta_arr = eta
        blr._m_dirty = True
        self._form = None
        self._n_fit = self.n

    @property
    def prior_variance_(self) -> float:
        """Current (evidence-optimised) prior variance of the weights."""
        return 1.0 / self._blr.alpha

    def to_state(self) -> dict[str, Any]:
        blr = self._blr
        return {
            "params": {
                "prior_variance": self.prior_variance,
                "noise_variance": self.noise_variance,
                "clip": self.clip,
                "warmup": self.warmup,
                "ignore": list(self.ignore),
                "winsor": self.winsor,
                "prior_variance_bounds": list(self.prior_variance_bounds),
                "bias": self.bias,
            },
            "n": self.n,
            "n_fit": self._n_fit,
            "counts": dict(self._scaler.counts),
            "means": dict(self._scaler.means),
            "vars": dict(self._scaler.vars),
            "alpha": blr.alpha,
            "beta": blr.beta,
            "idx": dict(blr._idx),
            "ss": blr._ss_arr.tolist(),
            "ss_inv": blr._ss_inv_arr.tolist(),
            "eta": blr._eta_arr.tolist(),
            "xtx": self._xtx.tolist(),
            "xty": self._xty.tolist(),
            "yty": self._yty,
            "cal": list(self._cal),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ResidualQualityModel:
        p = state["params"]
        model = cls(
            prior_variance=p["prior_variance"],
            noise_variance=p["noise_variance"],
            clip=p["clip"],
            warmup=p["warmup"],
            ignore=tuple(p["ignore"]),
            winsor=p["winsor"],
            prior_variance_bounds=tuple(p["prior_variance_bounds"]),
            bias=p["bias"],
        )
        model.n = state["n"]
        model._n_fit = state["n_fit"]
        model._scaler.counts = Counter(state["counts"])
        model._scaler.means = defaultdict(float, state["means"])
        model._scaler.vars = defaultdict(float, state["vars"])
        blr = model._blr
        blr.alpha = state["alpha"]
        blr.beta = state["beta"]
        blr._idx = dict(state["idx"])
        cap = len(state["eta"])
        blr._cap = cap
        blr._ss_arr = np.array(state["ss"], dtype=np.float64).reshape(cap, cap)
        blr._ss_inv_arr = np.asfortranarray(
            np.array(state["ss_inv"], dtype=np.float64).reshape(cap, cap)
        )
        blr._eta_arr = np.array(state["eta"], dtype=np.float64)
        blr._m_dirty = True
        model._xtx = np.array(state["xtx"], dtype=np.float64).reshape(cap, cap)
        model._xty = np.array(state["xty"], dtype=np.float64)
        model._yty = state["yty"]
        model._cal = list(state["cal"])
        return model
