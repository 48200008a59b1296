"""Circuit breakers over the real broker: an outage opens one, every reader of the compacted
topic sees it, probes close it, alerts say so, and the endpoint lists it."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import Any

import pytest
from aiokafka import TopicPartition
from circuit_lab import CircuitLab, agent_error
from healer_helpers import TOKENS, auth, healer
from support import llm_call, wait_until, wait_until_count

from finops.common.circuits import CircuitState, CircuitStatus
from finops.common.kafka import make_consumer, read_topic
from finops.healer.adapters.breaker_shards import BreakerShards
from finops.healer.adapters.circuits import CircuitsView, ProviderOutcome
from finops.healer.adapters.circuits_stream import breaker_config, breaker_pipeline
from finops.healer.domain.breaker_state import board_from_state
from finops.healer.domain.classify import ErrorClassifier

pytestmark = pytest.mark.integration

OVERLOADED = "The model is overloaded. Please try again later."


async def circuits(client: Any, **params: str) -> dict[tuple[str, str], dict[str, Any]]:
    answer = await client.get("/api/healing/circuits", params=params, headers=auth("agent"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == len(body["circuits"])
    return {(c["provider"], c["model"]): c for c in body["circuits"]}


async def breaker_gauge(client: Any) -> dict[str, float]:
    """``finops_healer_breakers{state}`` as the healer's /metrics shows it."""
    text = (await client.get("/metrics")).text
    found = re.findall(r'^finops_healer_breakers\{state="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {state: float(value) for state, value in found}


async def provider_outcomes(client: Any) -> dict[tuple[str, str], float]:
    """``finops_healer_breaker_provider_outcomes_total{provider,outcome}`` from /metrics."""
    text = (await client.get("/metrics")).text
    found = re.findall(
        r"^finops_healer_breaker_provider_outcomes_total\{(.*)\} (\S+)$", text, re.MULTILINE
    )
    counts = {}
    for labels, value in found:
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(label["provider"], label["outcome"])] = float(value)
    return counts


async def test_the_metrics_count_each_providers_faults_and_successes(lab: CircuitLab) -> None:
    """Failed calls reach the breakers as agent.error events (as the SDK's healing wrapper
    reports them): /metrics counts them by provider, so FinopsProviderErrorRateHigh sees an
    outage, and not the caller's own errors; providers past ``breaker_metric_providers``
    count as ``__other__``."""
    first, second = f"metered-{lab.tag}", f"late-{lab.tag}"
    async with healer(lab.healer_settings(breaker_metric_providers=1)) as client:
        before = await provider_outcomes(client)
        await lab.succeed(first, "m1", 3)
        await lab.fail(first, "m1", 4, 503, OVERLOADED)
        await lab.fail(first, "m1", 2, 400, "max_tokens: Field required")  # the caller's
        # two more faults after them, from the same agents (so on the same partitions): once
        # those are counted, the caller's errors have been read too
        await lab.fail(first, "m1", 2, 503, OVERLOADED)

        async def counted(provider: str, outcome: str, n: int) -> bool:
            now = await provider_outcomes(client)
            return now.get((provider, outcome), 0) - before.get((provider, outcome), 0) >= n

        await wait_until(lambda: counted(first, "fault", 6), 60, "the faults to be counted")
        await wait_until(lambda: counted(first, "success", 3), 60, "the successes")
        await lab.succeed(second, "m2", 2)
        await lab.fail(second, "m2", 1, 429, "Rate limit reached for requests")
        await wait_until(lambda: counted("__other__", "fault", 1), 60, "the late provider's")
        await wait_until(lambda: counted("__other__", "success", 2), 60, "its successes")
        after = await provider_outcomes(client)
    assert after[(first, "fault")] - before.get((first, "fault"), 0) == 6
    assert after[(first, "success")] - before.get((first, "success"), 0) == 3
    assert not any(provider == second for provider, _ in after)


async def test_an_outage_opens_the_breaker_everywhere_and_probes_close_it(lab: CircuitLab) -> None:
    second = lab.reader()
    await second.start()
    try:
        async with healer(lab.healer_settings()) as client:
            await lab.succeed("openai", "gpt-4o-mini", 12)
            await lab.fail("openai", "gpt-4o", 12, 503, OVERLOADED)
            # the caller's own mistakes say nothing about the provider
            await lab.fail("anthropic", "claude-3-5-haiku", 12, 400, "max_tokens: Field required")

            async def opened() -> Any:
                return (await circuits(client)).get(("openai", "gpt-4o"), {}).get("state") == "open"

            await wait_until(opened, 60, "the breaker of openai/gpt-4o to open")
            listed = await circuits(client)
            broken = listed[("openai", "gpt-4o")]
            assert broken["failures"] == broken["calls"] >= 10  # it opened at the 10th call
            assert broken["failure_rate"] == 1.0
            assert broken["opened_at"] is not None and broken["next_probe_at"] > broken["opened_at"]
            assert ("anthropic", "claude-3-5-haiku") not in listed
            gauge = await breaker_gauge(client)
            # the broken breaker may half-open at any moment now (its cool-down is 2 s)
            assert gauge["open"] + gauge["half_open"] == 1 and gauge["closed"] == 1
            await wait_until(
                lambda: second.state_of("openai", "gpt-4o") in ("open", "half_open"),
                10,
                "the second reader to see the breaker open",
            )
            await wait_until(
                lambda: (
                    (healthy := second.get("openai", "gpt-4o-mini")) is not None
                    and healthy.calls == 12
                ),
                10,
                "the second reader to see the healthy model's counts",
            )
            assert second.state_of("openai", "gpt-4o-mini") == "closed"

            # after the cool-down (2 s) the owner half-opens it; two successful probes close it
            async def half_open() -> bool:
                found = (await circuits(client, state="half_open")).get(("openai", "gpt-4o"))
                return found is not None

            await wait_until(half_open, 30, "the breaker to half-open after its cool-down")
            await lab.succeed("openai", "gpt-4o", 2)

            async def closed() -> bool:
                found = (await circuits(client)).get(("openai", "gpt-4o"), {})
                return found.get("state") == "closed"

            await wait_until(closed, 30, "the probes to close the breaker")
            await wait_until(
                lambda: second.state_of("openai", "gpt-4o") == "closed",
                10,
                "the second reader to see it closed",
            )
            only_open = await circuits(client, state="open")
            assert only_open == {}
    finally:
        await second.stop()
    alerts = [a for a in await lab.alerts_read() if a["subject"] == "openai/gpt-4o"]
    assert [a["kind"] for a in alerts] == ["breaker_open", "breaker_closed"]
    assert alerts[0]["source"] == "healer" and alerts[0]["severity"] == "critical"
    assert alerts[0]["details"]["state"] == "open"
    assert alerts[1]["details"]["state"] == "closed"


async def held_back_trips(client: Any) -> float:
    """``finops_healer_breaker_trips_held_back_total`` summed over its rules, from /metrics."""
    text = (await client.get("/metrics")).text
    found = re.findall(
        r"^finops_healer_breaker_trips_held_back_total\{.*\} (\S+)$", text, re.MULTILINE
    )
    return sum(float(value) for value in found)


def stamped(event: dict[str, Any], principal: str) -> dict[str, Any]:
    """``event`` as ingest publishes it for the key of user ``principal``."""
    return {**event, "data": {**event["data"], "principal": principal}}


async def test_one_keys_faults_open_nothing_while_another_agent_calls(lab: CircuitLab) -> None:
    """One key (the principal ingest stamps; here one that names 60 agent ids, as a key with
    events:write:any may) reports 60 faults of a model another key calls without trouble,
    and a third key one real fault: the breaker stays closed (without the first key's calls
    and faults, 1 of 6 calls failed) and /metrics counts the trips held back; the third
    key's further faults then make the case without the first key's, and open it."""
    async with healer(lab.healer_settings()) as client:
        held_before = await held_back_trips(client)
        honest = [stamped(llm_call("honest", model="gpt-q"), "user-honest") for _ in range(5)]
        await lab.send(lab.cost.name, honest)

        def counted(calls: int) -> CircuitState | None:
            state = client.app.state.circuits.get("openai", "gpt-q")
            return state if state is not None and state.calls == calls else None

        def fault_of(agent: str, principal: str) -> dict[str, Any]:
            return stamped(agent_error(agent, "openai", "gpt-q", 500, "Internal error"), principal)

        # the honest calls first: the faults below must not find the key the only caller
        await wait_until(lambda: counted(5), 60, "the honest key's calls to be counted")
        await lab.send(lab.errors.name, [fault_of(f"made-up-{i}", "liar") for i in range(60)])
        await lab.send(lab.errors.name, [fault_of("bot-2", "u2")])
        state = await wait_until(lambda: counted(66), 60, "the 61 faults to be counted")
        assert (state.state, state.failures) == (CircuitStatus.CLOSED, 61)
        assert state.reason == "never opened"
        # with min_calls 10: from liar's 5th fault on (5 of 10 calls), each would have opened
        # it, and u2's: 56 + 1
        assert await held_back_trips(client) - held_before == 57
        # u2's 4 more: without liar's, 5 of 10 calls failed (3 more held back on the way)
        await lab.send(lab.errors.name, [fault_of("bot-2", "u2") for _ in range(4)])
        opened = await wait_until(
            lambda: (s := counted(70)) is not None and s.state is CircuitStatus.OPEN and s,
            60,
            "u2's faults to open the breaker without liar's",
        )
        assert opened.reason.endswith("; faults from 2+ agents")
        assert await held_back_trips(client) - held_before == 60


async def test_the_circuits_endpoint_refuses_bad_input_with_a_code(lab: CircuitLab) -> None:
    async with healer(lab.healer_settings()) as client:
        anonymous = await client.get("/api/healing/circuits")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "not_authenticated"
        no_scope = {"Authorization": f"Bearer {TOKENS.token('x', role='agent', scopes=[])}"}
        refused = await client.get("/api/healing/circuits", headers=no_scope)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "insufficient_scope"
        for params in ({"state": "ajar"}, {"provider": ""}, {"model": "m" * 257}):
            bad = await client.get("/api/healing/circuits", params=params, headers=auth())
            assert bad.status_code == 422, params
            assert bad.json()["error"]["code"] == "validation_error"


async def test_a_poison_outcome_is_parked_on_the_dead_letter_topic(lab: CircuitLab) -> None:
    missing = b'{"provider": "openai"}'  # no model, no verdict
    # JSON's Infinity: the window's int(at) raised OverflowError, which parked nothing
    endless = ProviderOutcome(
        str(uuid.uuid4()), "openai", "x", True, float("inf"), "server_error", "bot"
    ).to_json()
    assert b'"at": Infinity' in endless
    async with healer(lab.healer_settings()) as client:
        for poison in (missing, endless):
            await lab.producer.send_and_wait(lab.outcomes.name, poison, key=b"openai/x")
        await lab.succeed("openai", "gpt-4o", 3)  # and the stream goes on
        await wait_until(
            lambda: client.app.state.circuits.state_of("openai", "gpt-4o") == "closed",
            60,
            "the next outcomes to be counted",
        )
    parked = [
        record async for record in read_topic(lab.kafka, f"{lab.outcomes.name}.dlq", idle_s=2.0)
    ]
    assert [r.value for r in parked] == [missing, endless]
    headers = [dict(r.headers) for r in parked]
    assert headers[0]["x-origin-topic"] == lab.outcomes.name.encode()
    assert [h["x-error-type"] for h in headers] == [b"KeyError", b"ValueError"]


@pytest.mark.timeout(600)  # the breakers are waited on while they open
async def test_two_instances_split_the_breakers_and_both_serve_every_one(lab: CircuitLab) -> None:
    """Each breaker is counted by one owner; both instances' views hold every breaker."""
    settings = lab.healer_settings(breaker_cooldown_s=600.0)  # they stay open meanwhile
    classifier = ErrorClassifier()
    views = [lab.reader(), lab.reader()]
    for view in views:
        await view.start()
    models = [f"model-{i}" for i in range(12)]
    try:
        async with (
            breaker_pipeline(settings, lambda: classifier, views[0], lab.store) as one_running,
            breaker_pipeline(settings, lambda: classifier, views[1], lab.store) as other_running,
        ):
            one = one_running.owners
            other = other_running.owners
            # Split, not shared: each partition has one owner. The local broker (tansu) may,
            # when two members join at once, elect a leader in each of two generations for a
            # moment (both own a partition until the stale one's heartbeat is refused and it
            # revokes), so the split is awaited, not asserted at first sight. On a machine
            # loaded past its two cores (a run beside other work) a missed heartbeat restarts
            # the rebalance: 60 s was seen to run out; a failure says who owns what.
            try:
                await wait_until(
                    lambda: (
                        one.shards
                        and other.shards
                        and one.shards.keys() | other.shards.keys() == {0, 1, 2}
                        and not one.shards.keys() & other.shards.keys()
                    ),
                    150,
                    "the two instances to split the outcome partitions between them",
                )
            except AssertionError as timed_out:
                raise AssertionError(
                    f"{timed_out}\n{describe_owner('one', one)}\n{describe_owner('other', other)}"
                ) from None
            for model in models:  # twice the minimum: a rebalance may still be settling
                await lab.fail("openai", model, 20, 500, "The server had an error")
            # as long as breakers keep opening (rebalances on a loaded machine take their
            # time); a count that stays put for two minutes fails, saying who owns what
            await wait_until_count(
                lambda: sum(v.state_of("openai", m) == "open" for v in views for m in models),
                len(views) * len(models),
                120,
                "every breaker open in both views",
                detail=lambda: "\n" + owners_and_views(one, other, views, models),
            )
            counted_by_one = {m for s in one.shards.values() for (_, m) in s.board.breakers}
            counted_by_other = {m for s in other.shards.values() for (_, m) in s.board.breakers}
            # never on both boards (a partition that moved is forgotten by its old owner); which
            # instance counts which breaker at the end depends on rebalances (a member that
            # missed a heartbeat under load rejoins and may take every partition for a while)
            assert not counted_by_one & counted_by_other
            # every breaker was counted by an owner: opening one takes breaker_min_calls of its
            # failures (the boards may be empty by now: a late rebalance makes both forget)
            applied = one.outcomes_applied + other.outcomes_applied
            assert applied >= settings.breaker_min_calls * len(models)
    finally:
        for view in views:
            await view.stop()


async def where_outcomes_are(
    lab: CircuitLab, view: CircuitsView, sent: dict[str, int], owners: list[BreakerShards]
) -> str:
    """Per model: calls sent, outcomes forwarded (distinct ids, and at which offsets of which
    partition), calls the view and each owner's board have; then what each owner owns."""
    on_cost_topic: dict[str, set[str]] = {m: set() for m in sent}
    async for record in read_topic(lab.kafka, lab.cost.name, idle_s=2.0, timeout_s=60):
        event = json.loads(record.value)
        if event["data"].get("model") in on_cost_topic:
            on_cost_topic[event["data"]["model"]].add(event["id"])
    forwarded: dict[str, dict[str, tuple[int, int]]] = {m: {} for m in sent}
    async for record in read_topic(lab.kafka, lab.outcomes.name, idle_s=2.0, timeout_s=60):
        outcome = json.loads(record.value)
        if outcome.get("model") in forwarded:
            forwarded[outcome["model"]].setdefault(
                outcome["event_id"], (record.partition, record.offset)
            )
    lines = []
    for model, calls in sent.items():
        state = view.get("openai", model)
        boards = [
            b.window.calls
            for o in owners
            for shard in o.shards.values()
            for (_, m), b in shard.board.breakers.items()
            if m == model
        ]
        where = sorted(forwarded[model].values())
        lines.append(
            f"{model}: sent {calls}, on the cost topic {len(on_cost_topic[model])},"
            f" forwarded {len(where)} (partition/offset"
            f" {where[0] if where else None}..{where[-1] if where else None}), view"
            f" {state.calls if state else None}, boards {boards}"
        )
    lines += [describe_owner(str(n), owner) for n, owner in enumerate(owners)]
    return "\n".join(lines)


def describe_owner(name: str, owner: BreakerShards) -> str:
    """The partitions an owner holds and is assigned, its next offsets and what it counted."""
    return (
        f"owner {name}: partitions {sorted(owner.shards)}, next offsets {owner.offsets},"
        f" assigned {sorted(tp.partition for tp in owner.consumer.assignment())}, counted"
        f" {owner.outcomes_applied}"
    )


def owners_and_views(
    one: BreakerShards, other: BreakerShards, views: list[CircuitsView], models: list[str]
) -> str:
    """What each owner owns and counted, and each view's breakers that are not open."""
    lines = [describe_owner("one", one), describe_owner("other", other)]
    for n, view in enumerate(views):
        states = {m: view.get("openai", m) for m in models}
        lines.append(
            f"view {n}, not open: "
            + ", ".join(
                f"{m}={s.state.value if s else None}/{s.calls if s else 0} calls"
                for m, s in states.items()
                if s is None or s.state is not CircuitStatus.OPEN
            )
        )
    return "\n".join(lines)


async def test_a_state_a_deposed_owner_published_late_is_overwritten(lab: CircuitLab) -> None:
    """A deposed owner's late state (fewer outcomes counted, the same newest event time: the
    readers take the later of two equal ones) is published over by the breaker's owner."""
    settings = lab.healer_settings(breaker_cooldown_s=600.0, breaker_republish_interval_s=1.0)
    classifier = ErrorClassifier()
    view = lab.reader()
    await view.start()
    try:
        async with breaker_pipeline(settings, lambda: classifier, view, lab.store) as owner_running:
            owner = owner_running.owners
            await wait_until(lambda: len(owner.shards) == 3, 60, "the owner to own all")
            await lab.fail("openai", "gpt-x", 20, 500, "The server had an error")

            def opened() -> CircuitState | None:
                state = view.get("openai", "gpt-x")
                return state if state and state.state is CircuitStatus.OPEN else None

            counted = await wait_until(
                lambda: (state := opened()) and state.calls == 20 and state,
                60,
                "the breaker open in the view with every failure counted",
            )
            # what an owner that had counted 5 of the 20 (the newest among them) says
            stale = dataclasses.replace(
                counted, state=CircuitStatus.CLOSED, calls=5, failures=5, opened_at=None,
                next_probe_at=None, reason="never opened",
            )  # fmt: skip
            sent = await lab.producer.send_and_wait(
                lab.circuits.name, stale.to_json(), key=stale.key.encode()
            )
            published_after = await wait_until(
                lambda: states_after(lab, sent.partition, sent.offset, stale.key),
                60,
                "the breaker's state published after the stale one",
            )
            assert published_after[0].state is CircuitStatus.OPEN
            assert (published_after[0].calls, published_after[0].failures) == (20, 20)
            assert published_after[0].updated_at == stale.updated_at
            await wait_until(opened, 60, "the view to say open again")
    finally:
        await view.stop()


async def states_after(lab: CircuitLab, partition: int, offset: int, key: str) -> list[Any]:
    """The states of breaker ``key`` published on ``partition`` after ``offset``."""
    tp = TopicPartition(lab.circuits.name, partition)
    consumer = make_consumer(lab.kafka, group_id=None)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset + 1)
        batch = await consumer.getmany(tp, timeout_ms=500)
        return [CircuitState.from_json(r.value) for r in batch.get(tp, []) if r.key == key.encode()]
    finally:
        await consumer.stop()


@pytest.mark.timeout(600)  # three rounds through two rebalances, each waited on while it counts
async def test_breakers_count_each_outcome_once_while_their_partitions_change_hands(
    lab: CircuitLab,
) -> None:
    """Counts stay exact through two rebalances (a second owner joins, then leaves): each
    partition's next owner restores its checkpoint and reads on from its offset. Events sent
    twice (an agent's retry) are counted once."""
    # an hour's window and no opening: a breaker's published calls are every call counted
    settings = lab.healer_settings(breaker_window_s=3600.0, breaker_min_calls=1_000_000)
    classifier = ErrorClassifier()
    view = lab.reader()
    await view.start()
    models = [f"model-{i}" for i in range(9)]
    sent: dict[str, int] = dict.fromkeys(models, 0)

    async def send_round(n: int) -> None:
        for model in models:
            await lab.succeed("openai", model, n)
            sent[model] += n

    def counted_of_sent() -> int:
        """Calls counted, each model's capped at what was sent to it (so an excess on one
        model cannot stand in for a shortfall on another)."""
        states = {m: view.get("openai", m) for m in models}
        return sum(min(s.calls, sent[m]) for m, s in states.items() if s is not None)

    owners: list[BreakerShards] = []

    async def counted_as_sent(what: str) -> None:
        # as long as the count grows (a rebalance on a loaded machine takes its time); a
        # count that stays put for two minutes fails, saying where the outcomes are
        try:
            await wait_until_count(counted_of_sent, sum(sent.values()), 120, what)
        except AssertionError as stuck:
            found = await where_outcomes_are(lab, view, sent, owners)
            raise AssertionError(f"{stuck}\n{found}") from None

    try:
        async with breaker_pipeline(settings, lambda: classifier, view, lab.store) as one_running:
            one = one_running.owners
            owners.append(one)
            await wait_until(lambda: len(one.shards) == 3, 60, "the first owner to own all")
            await send_round(7)
            await counted_as_sent("the first round counted")
            async with breaker_pipeline(
                settings, lambda: classifier, view, lab.store
            ) as other_running:
                other = other_running.owners
                owners.append(other)
                await wait_until(
                    lambda: (
                        one.shards and other.shards and len(one.shards) + len(other.shards) == 3
                    ),
                    60,
                    "the second owner to take some partitions",
                )
                await send_round(5)
                duplicates = [llm_call("bot-x", provider="openai", model=m) for m in models]
                await lab.send(lab.cost.name, duplicates + duplicates)
                for model in models:
                    sent[model] += 1
                await counted_as_sent("the second round counted")
            await wait_until(lambda: len(one.shards) == 3, 60, "the first owner to own all again")
            await send_round(3)
            await counted_as_sent("the third round counted")
        assert {m: view.get("openai", m).calls for m in models} == sent  # type: ignore[union-attr]
        assert set(sent.values()) == {16}
        # the owners' checkpoints hold exactly these counts, one row per partition
        checkpointed: dict[str, int] = {}
        for partition in range(3):
            saved = await lab.store.load(f"{settings.breaker_checkpoint_name}:p{partition}")
            assert saved is not None, partition
            board = board_from_state(saved.state_dict()["board"], breaker_config(settings))
            for (_, model), breaker in board.breakers.items():
                checkpointed[model] = breaker.window.calls
        assert checkpointed == sent
    finally:
        await view.stop()
