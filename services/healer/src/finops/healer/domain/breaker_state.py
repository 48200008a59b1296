"""A breaker board's whole state, as a checkpoint holds it (pure: no I/O).

:meth:`~finops.healer.domain.breakers.Breaker.snapshot` is what the circuits topic publishes:
enough for the advice, not for counting on (the window's buckets, the cool-down, the probes
so far and the DDM detector are not in it). A checkpoint holds all of it, so the next owner of
a breaker's partition goes on exactly where the last one stopped.

The DDM detector is river's object: its statistics are saved pickled with river's version. A
checkpoint written by another river version starts that breaker's detector afresh (it warms
up again over ``detector_warm_start`` outcomes; the window's counts are kept).

The agents of the quorum (each bucket's callers and faulters, the probes' faulters) are saved
beside the buckets, under keys of their own (``bucket_agents``, ``probe_faulters``): the
buckets keep the ``[second, calls, failures]`` the version before the quorum wrote and reads,
so each version reads the other's checkpoints. A checkpoint of the version before restores
its buckets with no agents, as outcomes of unknown agents: they count in the failure rate and
the recent faults, and for no agent. The alternative, taking them for a met quorum, would let
one agent's faults open the breaker for the whole fleet for up to a window after the upgrade,
which is what the quorum forbids; unknown, they delay an opening until the faults of the
agents known since make a quorum, or open it at once when no agent is known yet (the rule
before the quorum, see :meth:`~finops.healer.domain.breaker_window.Reporters.quorum_met`).

Examples
--------
>>> from finops.healer.domain.breakers import BreakerBoard, BreakerConfig
>>> from finops.common.provider_errors.taxonomy import ErrorKind
>>> board = BreakerBoard(BreakerConfig(min_calls=2))
>>> board.success("openai", "gpt-4o", at=100.0)
>>> _ = board.failure("openai", "gpt-4o", ErrorKind.SERVER_ERROR, at=101.0)
>>> restored = board_from_state(board_to_state(board), BreakerConfig(min_calls=2))
>>> key = ("openai", "gpt-4o")
>>> restored.breakers[key].snapshot() == board.breakers[key].snapshot()
True
"""

from __future__ import annotations

import base64
import math
import pickle  # only the healer's own checkpoint rows are unpickled
from collections.abc import Mapping
from typing import Any

import river

from finops.common.circuits import CircuitStatus
from finops.healer.domain.breaker_window import Bucket
from finops.healer.domain.breakers import Breaker, BreakerBoard, BreakerConfig

__all__ = ["board_from_state", "board_to_state", "breaker_from_state", "breaker_to_state"]


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def breaker_to_state(breaker: Breaker) -> dict[str, Any]:
    """Everything a breaker counts on, JSON-safe."""
    return {
        "provider": breaker.provider,
        "model": breaker.model,
        "status": breaker.status.value,
        "buckets": [[b.second, b.calls, b.failures] for b in breaker.window.buckets],
        "bucket_agents": [
            {"second": b.second, "callers": sorted(b.callers), "faulters": sorted(b.faulters)}
            for b in breaker.window.buckets
            if b.callers or b.faulters
        ],
        "probe_faulters": sorted(breaker.probe_faulters),
        "holding_back": breaker.holding_back,
        "alarm_until": _finite_or_none(breaker.alarm_until),
        "opened_at": breaker.opened_at,
        "next_probe_at": breaker.next_probe_at,
        "cooldown_s": breaker.cooldown_s,
        "probe_successes": breaker.probe_successes,
        "reason": breaker.reason,
        "updated_at": breaker.updated_at,
        "detector": {
            "river": river.__version__,
            "pickle": base64.b64encode(pickle.dumps(breaker.detector)).decode("ascii"),
        },
    }


def breaker_from_state(state: Mapping[str, Any], config: BreakerConfig) -> Breaker:
    """The breaker :func:`breaker_to_state` saved, counting on under ``config``."""
    breaker = Breaker(str(state["provider"]), str(state["model"]), config)
    breaker.status = CircuitStatus(state["status"])
    breaker.window.restore(_buckets(state))
    alarm_until = state["alarm_until"]
    breaker.alarm_until = float("-inf") if alarm_until is None else float(alarm_until)
    breaker.opened_at = state["opened_at"]
    breaker.next_probe_at = state["next_probe_at"]
    breaker.cooldown_s = float(state["cooldown_s"])
    breaker.probe_successes = int(state["probe_successes"])
    breaker.reason = str(state["reason"])
    breaker.updated_at = float(state["updated_at"])
    breaker.probe_faulters = {str(agent) for agent in state.get("probe_faulters", ())}
    breaker.holding_back = bool(state.get("holding_back", False))
    detector = state["detector"]
    if detector["river"] == river.__version__:  # else the new breaker's fresh detector
        breaker.detector = pickle.loads(base64.b64decode(detector["pickle"]))  # noqa: S301
    return breaker


def _buckets(state: Mapping[str, Any]) -> list[Bucket]:
    """The saved window's buckets with their agents (none in a checkpoint of the version
    before the quorum: see the module's docstring)."""
    agents = {int(saved["second"]): saved for saved in state.get("bucket_agents", ())}
    buckets = []
    for second, calls, failures in state["buckets"]:
        saved = agents.get(int(second), {})
        buckets.append(
            Bucket(
                int(second),
                int(calls),
                int(failures),
                {str(agent) for agent in saved.get("callers", ())},
                {str(agent) for agent in saved.get("faulters", ())},
            )
        )
    return buckets


def board_to_state(board: BreakerBoard) -> dict[str, Any]:
    """Every breaker of ``board``, JSON-safe (what changed since the last publish is not
    saved: a checkpoint is taken after its states are published)."""
    return {"breakers": [breaker_to_state(b) for _, b in sorted(board.breakers.items())]}


def board_from_state(state: Mapping[str, Any], config: BreakerConfig) -> BreakerBoard:
    """The board :func:`board_to_state` saved; a breaker it does not hold starts closed."""
    board = BreakerBoard(config)
    for saved in state["breakers"]:
        breaker = breaker_from_state(saved, config)
        board.breakers[(breaker.provider, breaker.model)] = breaker
    return board
