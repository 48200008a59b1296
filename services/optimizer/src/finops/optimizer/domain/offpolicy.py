"""Off-policy evaluation: what would another routing policy have earned, judged from the log?

Every recommendation is logged with the probability (propensity) of the arm it chose and the
policy's estimates for every arm; the cost event of the call made with it carries its
``recommendation_id``. Joining the two gives bandit samples ``(x, a, p, r)``, from which the
value of a new deterministic policy ``pi`` is estimated without running it:

* IPS:   ``mean( 1[pi(x) = a] * r / p )``
* SNIPS: the same, normalised by ``mean( 1[pi(x) = a] / p )`` (lower variance)
* DR:    ``mean( r_hat(x, pi(x)) + 1[pi(x) = a] * (r - r_hat(x, a)) / p )``, with ``r_hat``
  the logging policy's own per-arm estimates (doubly robust: unbiased if either the
  propensities or the estimates are right).

Each estimator is computed for quality and for cost per call.

Examples
--------
>>> samples = [
...     LoggedDecision("r1", "qa", "big", 0.5, 1.0, 0.010,
...                    {"big": (0.9, 0.010), "small": (0.7, 0.001)}),
...     LoggedDecision("r2", "qa", "small", 0.5, 1.0, 0.001,
...                    {"big": (0.9, 0.010), "small": (0.7, 0.001)}),
... ]
>>> round(evaluate(samples, TARGET_POLICIES["cheapest"]).ips_quality, 3)
1.0
>>> round(evaluate(samples, TARGET_POLICIES["cheapest"]).ips_cost_usd, 4)
0.001
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from finops.optimizer.domain.arm_identity import Arm

_ARM_SEP = "|"

#: arm -> (expected quality, expected cost in USD), as logged with the decision
Estimates = dict[str, tuple[float, float]]
TargetPolicy = Callable[[str, Estimates], str]


@dataclass(frozen=True)
class LoggedDecision:
    recommendation_id: str
    task_type: str
    arm: str
    propensity: float
    quality: float
    cost_usd: float
    estimates: Estimates


@dataclass(frozen=True)
class Estimate:
    policy: str
    samples: int
    matched: int
    effective_sample_size: float
    logged_quality: float
    logged_cost_usd: float
    ips_quality: float
    snips_quality: float
    dr_quality: float
    ips_cost_usd: float
    snips_cost_usd: float
    dr_cost_usd: float

    def to_dict(self) -> dict[str, Any]:
        """The estimate as JSON can hold it: None where a figure is undefined (NaN: e.g. the
        self-normalised estimates when no decision matched the policy)."""
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in asdict(self).items()
        }


@dataclass
class JoinStats:
    recommendations: int = 0
    outcomes: int = 0
    joined: int = 0
    not_followed: int = 0
    unmatched: int = 0


def join(
    recommendations: Iterable[Mapping[str, Any]], outcomes: Iterable[Mapping[str, Any]]
) -> tuple[list[LoggedDecision], JoinStats]:
    """Pair logged recommendations with the cost events that report their outcome.

    An outcome whose call used another arm than the one recommended is not a sample of the
    logging policy ("not followed") and is left out, as are outcomes without quality.
    """
    stats = JoinStats()
    by_id: dict[str, Mapping[str, Any]] = {}
    for rec in recommendations:
        stats.recommendations += 1
        by_id[str(rec["recommendation_id"])] = rec
    samples: list[LoggedDecision] = []
    seen: set[str] = set()
    for event in outcomes:
        data = event.get("data") or {}
        decision = data.get("decision") or {}
        rec_id = decision.get("recommendation_id")
        if not rec_id:
            continue
        stats.outcomes += 1
        found = by_id.get(str(rec_id))
        if found is None or rec_id in seen or data.get("quality") is None:
            stats.unmatched += 1
            continue
        rec = found
        if Arm.of_call(data).key != rec["arm"]:
            stats.not_followed += 1
            continue
        seen.add(rec_id)
        estimates = {
            alt["arm"]: (float(alt["expected_quality"]), float(alt["expected_cost_usd"]))
            for alt in rec.get("alternatives", [])
        }
        samples.append(
            LoggedDecision(
                str(rec_id),
                str(rec["task_type"]),
                str(rec["arm"]),
                float(rec["propensity"]),
                float(data["quality"]) if data.get("success", True) else 0.0,
                float(data.get("cost_usd") or 0.0),
                estimates,
            )
        )
        stats.joined += 1
    return samples, stats


def _cheapest_within(ratio: float) -> TargetPolicy:
    def choose(task_type: str, estimates: Estimates) -> str:
        best = max(q for q, _ in estimates.values())
        ok = [a for a, (q, _) in estimates.items() if q >= ratio * best]
        return min(ok, key=lambda a: estimates[a][1])

    return choose


TARGET_POLICIES: dict[str, TargetPolicy] = {
    "cheapest": lambda _t, est: min(est, key=lambda a: est[a][1]),
    "best-quality": lambda _t, est: max(est, key=lambda a: est[a][0]),
    "cheapest-within-95": _cheapest_within(0.95),
    "cheapest-within-90": _cheapest_within(0.90),
}


FIXED = "fixed:"


def target_policy(name: str) -> TargetPolicy:
    """A named policy, or ``fixed:<arm>``: always that arm (a ``model|provider|config`` key,
    see :func:`resolve_arm`), and where a decision did not offer it, the cheapest arm it did.

    >>> target_policy("fixed:")
    Traceback (most recent call last):
    ...
    ValueError: fixed: needs an arm, e.g. fixed:gpt-4o|openai|default (model|provider|config)
    """
    if name.startswith(FIXED):
        arm = name.removeprefix(FIXED)
        if not arm:
            raise ValueError(
                f"{FIXED} needs an arm, e.g. {FIXED}gpt-4o|openai|default (model|provider|config)"
            )
        return lambda _t, est: arm if arm in est else min(est, key=lambda a: est[a][1])
    try:
        return TARGET_POLICIES[name]
    except KeyError:
        known = ", ".join([*TARGET_POLICIES, "fixed:<arm>"])
        raise ValueError(f"unknown policy {name!r}; choose one of {known}") from None


def logged_arms(samples: Iterable[LoggedDecision]) -> set[str]:
    """Every arm a logged decision took or offered."""
    arms: set[str] = set()
    for s in samples:
        arms.add(s.arm)
        arms.update(s.estimates)
    return arms


def resolve_arm(wanted: str, arms: Iterable[str]) -> str:
    """The logged arm ``wanted`` names: its exact ``model|provider|config`` key, or the one
    arm whose model (or ``model|provider``) it is; a ValueError naming the arms otherwise.

    >>> arms = {"gpt-4o|openai|default", "gpt-4o|azure|default", "llama|groq|default"}
    >>> resolve_arm("llama", arms)
    'llama|groq|default'
    >>> resolve_arm("gpt-4o|azure", arms)
    'gpt-4o|azure|default'
    >>> resolve_arm("gpt-4o", arms)
    Traceback (most recent call last):
    ...
    ValueError: fixed:gpt-4o matches 2 logged arms (gpt-4o|azure|default, gpt-4o|openai|default): give one as model|provider|config
    """  # noqa: E501
    known = sorted(set(arms))
    if wanted in known:
        return wanted
    prefix = Arm.parse(wanted)
    matches = [
        a
        for a in known
        if (parsed := Arm.parse(a)).model == prefix.model
        and (wanted.count(_ARM_SEP) == 0 or parsed.provider == prefix.provider)
        and wanted.count(_ARM_SEP) < 2
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(
            f"{FIXED}{wanted} matches {len(matches)} logged arms ({', '.join(matches)}): "
            "give one as model|provider|config"
        )
    raise ValueError(
        f"{FIXED}{wanted}: no logged decision took or offered that arm; "
        f"known arms (model|provider|config): {', '.join(known) or 'none'}"
    )


def evaluate(samples: list[LoggedDecision], policy: TargetPolicy, name: str = "") -> Estimate:
    n = len(samples)
    if n == 0:
        nan = math.nan
        return Estimate(name, 0, 0, 0.0, nan, nan, nan, nan, nan, nan, nan, nan)
    ips_q = ips_c = dr_q = dr_c = weight_sum = weight_sq = 0.0
    matched = 0
    for s in samples:
        est = s.estimates or {s.arm: (s.quality, s.cost_usd)}
        chosen = policy(s.task_type, est)
        q_hat_pi, c_hat_pi = est.get(chosen, (0.0, 0.0))
        q_hat_a, c_hat_a = est.get(s.arm, (s.quality, s.cost_usd))
        w = 1.0 / s.propensity if chosen == s.arm else 0.0
        matched += chosen == s.arm
        weight_sum += w
        weight_sq += w * w
        ips_q += w * s.quality
        ips_c += w * s.cost_usd
        dr_q += q_hat_pi + w * (s.quality - q_hat_a)
        dr_c += c_hat_pi + w * (s.cost_usd - c_hat_a)
    snips_q = ips_q / weight_sum if weight_sum else math.nan
    snips_c = ips_c / weight_sum if weight_sum else math.nan
    return Estimate(
        policy=name,
        samples=n,
        matched=matched,
        effective_sample_size=(weight_sum**2 / weight_sq) if weight_sq else 0.0,
        logged_quality=sum(s.quality for s in samples) / n,
        logged_cost_usd=sum(s.cost_usd for s in samples) / n,
        ips_quality=ips_q / n,
        snips_quality=snips_q,
        dr_quality=dr_q / n,
        ips_cost_usd=ips_c / n,
        snips_cost_usd=snips_c,
        dr_cost_usd=dr_c / n,
    )
