"""A breaker board saved and restored goes on exactly as one that never stopped."""

from __future__ import annotations

import json
import pickle
import random

import pytest

from finops.common.id_dedupe import IdDedupe
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.adapters.breaker_shards import BreakerShard
from finops.healer.adapters.circuits import ProviderOutcome
from finops.healer.domain.breaker_state import board_from_state, board_to_state
from finops.healer.domain.breakers import Breaker, BreakerBoard, BreakerConfig, Transition

CONFIG = BreakerConfig(min_calls=10, cooldown_s=5.0, window_s=30.0)
MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-3-5-haiku"), ("openai", "gpt-4o-mini")]


def feed(board: BreakerBoard, calls: list[tuple[str, str, bool, float]]) -> list[Transition]:
    moved = []
    for provider, model, failed, at in calls:
        if failed:
            transition = board.failure(provider, model, ErrorKind.OVERLOADED, at=at)
        else:
            transition = board.success(provider, model, at=at)
        if transition is not None:
            moved.append(transition)
        moved += board.tick(at)
    return moved


def calls_with_outages(seed: int) -> list[tuple[str, str, bool, float]]:
    """Calls to three models over 200 s, each failing in bursts (so breakers open, probe,
    reopen and close), a few calls a second."""
    rng = random.Random(seed)
    out = []
    at = 1_000.0
    for step in range(1_500):
        at += rng.expovariate(8.0)
        provider, model = rng.choice(MODELS)
        outage = (step // 150) % 3 == MODELS.index((provider, model))
        out.append((provider, model, rng.random() < (0.8 if outage else 0.05), at))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_board_restored_midway_makes_the_same_transitions_as_one_that_ran_through(seed):
    calls = calls_with_outages(seed)
    through = BreakerBoard(CONFIG)
    expected = feed(through, calls)
    assert {t.after.value for t in expected} == {"open", "half_open", "closed"}  # all exercised

    for cut in (137, 600, 1_111):
        first = BreakerBoard(CONFIG)
        moved = feed(first, calls[:cut])
        # through JSON, as a checkpoint row holds it
        saved = json.loads(json.dumps(board_to_state(first)))
        moved += feed(board_from_state(saved, CONFIG), calls[cut:])
        assert moved == expected, f"seed {seed}, cut at call {cut}"


def test_a_detector_saved_by_another_river_version_starts_afresh():
    board = BreakerBoard(CONFIG)
    feed(board, calls_with_outages(0)[:200])
    saved = board_to_state(board)
    for breaker in saved["breakers"]:
        breaker["detector"]["river"] = "0.0.0"
    restored = board_from_state(saved, CONFIG)
    fresh = pickle.dumps(Breaker("p", "m", CONFIG).detector)
    for key, breaker in restored.breakers.items():
        assert pickle.dumps(board.breakers[key].detector) != fresh  # it had learned
        assert pickle.dumps(breaker.detector) == fresh  # a new detector, warming up again
        assert breaker.window.calls == board.breakers[key].window.calls  # counts kept


def test_a_shard_counts_an_outcome_of_an_unknown_kind_nowhere() -> None:
    shard = BreakerShard(BreakerBoard(CONFIG), IdDedupe(1024))
    event_id = "5b0e3b8e-2c1a-4f6e-9d7a-0b1c2d3e4f50"
    bad = ProviderOutcome(event_id, "openai", "gpt-4o", failed=True, at=0.0, kind="no-such-kind")
    with pytest.raises(ValueError):
        shard.count(bad)
    assert (shard.applied, len(shard.seen)) == (0, 0)
    good = ProviderOutcome(event_id, "openai", "gpt-4o", failed=True, at=0.0, kind="rate_limit")
    shard.count(good)  # the same id, now readable: counted, not taken for a duplicate
    assert (shard.applied, len(shard.seen)) == (1, 1)
