"""A breaker board's whole state, as a checkpoint holds it (pure: no I/O).

:meth:`~finops.healer.domain.breakers.Breaker.snapshot` is what the circuits topic publishes:
enough for the advice, not for counting on (the window's buckets, the cool-down, the probes
so far and the DDM detector are not in it). A checkpoint holds all of it, so the next owner of
a breaker's partition goes on exactly where the last one stopped.

The DDM detector is river's object: its statistics are saved pickled with river's version. A
checkpoint written by another river version starts that breaker's detector afresh (it warms
up again over ``detector_warm_start`` outcomes; the window's counts are kept).

The counts of each agent the quorum keeps apart (per second of the window, and the probes'
since the breaker half-opened) are saved beside the buckets, under keys of their own
(``bucket_counts``: ``{"second": s, "agents": [[agent, calls, faults], ...]}`` per bucket that
has any, ``probe_agents``: ``[[agent, calls, faults], ...]``; ``null``: the unknown agent).
The buckets keep the ``[second, calls, failures]`` every version wrote and reads, so each
version reads the others' checkpoints:

- a checkpoint of the version before the quorum (no agents) and one of the first version of
  the quorum (``bucket_agents``: up to ``quorum`` ids of the callers and faulters of each
  second, with no counts; ``probe_faulters``: ids) restore each bucket's calls and faults as
  the unknown agent's: those ids cannot say who made how many faults. Beside a known agent
  the unknown agent's outcomes are left out
  (:func:`~finops.healer.domain.breaker_window.leave_out_top_faulters`), so faults from
  before the upgrade, whoever sent them, do not help one agent open a breaker; for up to a
  window (60 s) after the upgrade the agents known since must make the case on their own
  counts (a model's only caller too). With no agent known since, nothing is left out: the
  rule before the quorum. The first version's probe faulters restore with one probe fault
  each;
- those versions read a checkpoint of this one as they read their own, without the agents'
  counts (the first version of the quorum: as outcomes of unknown agents).

Examples
--------
>>> from finops.healer.domain.breaker_board import BreakerBoard
>>> from finops.healer.domain.breakers import BreakerConfig
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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import river

from finops.common.circuits import CircuitStatus
from finops.healer.domain.breaker_board import BreakerBoard
from finops.healer.domain.breaker_window import Agent, AgentCounts, Bucket
from finops.healer.domain.breakers import Breaker, BreakerConfig

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
        "bucket_counts": [
            {"second": b.second, "agents": _agents_to_state(b.agents)}
            for b in breaker.window.buckets
            if b.agents
        ],
        "probe_agents": _agents_to_state(breaker.probe_agents),
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
    breaker.probe_agents = _probe_agents(state)
    breaker.holding_back = bool(state.get("holding_back", False))
    detector = state["detector"]
    if detector["river"] == river.__version__:  # else the new breaker's fresh detector
        breaker.detector = pickle.loads(base64.b64decode(detector["pickle"]))  # noqa: S301
    return breaker


def _agents_to_state(agents: Mapping[Agent, AgentCounts]) -> list[list[Any]]:
    return [[agent, counts.calls, counts.faults] for agent, counts in agents.items()]


def _agents_from_state(saved: Iterable[Sequence[Any]]) -> dict[Agent, AgentCounts]:
    return {
        None if agent is None else str(agent): AgentCounts(int(calls), int(faults))
        for agent, calls, faults in saved
    }


def _buckets(state: Mapping[str, Any]) -> list[Bucket]:
    """The saved window's buckets with their agents' counts (the unknown agent's, in a
    checkpoint of a version that kept none: see the module's docstring)."""
    saved_counts = state.get("bucket_counts")
    agents = {int(saved["second"]): saved["agents"] for saved in saved_counts or ()}
    buckets = []
    for second, calls, failures in state["buckets"]:
        bucket = Bucket(int(second), int(calls), int(failures))
        if saved_counts is not None:
            bucket.agents = _agents_from_state(agents.get(bucket.second, ()))
        elif bucket.calls:
            bucket.agents = {None: AgentCounts(bucket.calls, bucket.failures)}
        buckets.append(bucket)
    return buckets


def _probe_agents(state: Mapping[str, Any]) -> dict[Agent, AgentCounts]:
    """The probes' counts per agent; the first version of the quorum saved only who failed a
    probe (``probe_faulters``): one probe fault each."""
    if "probe_agents" in state:
        return _agents_from_state(state["probe_agents"])
    return {str(agent): AgentCounts(1, 1) for agent in state.get("probe_faulters", ())}


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
