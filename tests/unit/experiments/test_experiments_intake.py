"""The experiments intake (its forwarding stage) learns every task type it sees on calls, tagged
or not, forwards the error a call assigned to an experiment gave up after as a failure of its
variant, and parks a record that is not an event of its topic's type on the dead-letter topic
without learning from it."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from stream_fakes import BufferedConsumer, KeptProducer, NoExperiments
from support import llm_call

from finops.common.events import error_event
from finops.experiments.adapters.forward import TaggedForwarder
from finops.experiments.domain.tagged import ARMS_HEADER, Tagged, decode_tagged


async def _task_types_recorded(body: bytes, producer: KeptProducer | None = None) -> set[str]:
    stop = asyncio.Event()
    repo = NoExperiments()
    forwarder = TaggedForwarder(
        BufferedConsumer("agent.cost.v1", stop, polls=1, body=body),  # type: ignore[arg-type]
        producer=producer,  # type: ignore[arg-type]
        repo=repo,  # type: ignore[arg-type]
        events_topic="finops.experiment-events.v1",
        partitions=3,
    )
    await forwarder.run(stop)
    return repo.task_types


def _forwarding_to(producer: Any, repo: NoExperiments | None = None) -> TaggedForwarder:
    """A forwarder whose records are handed to its forward() by the test (no consumer),
    sending what it forwards with ``producer``."""
    return TaggedForwarder(
        None,  # type: ignore[arg-type]
        producer,
        repo or NoExperiments(),  # type: ignore[arg-type]
        events_topic="finops.experiment-events.v1",
        partitions=3,
    )


def _invalid() -> float:
    value = REGISTRY.get_sample_value("finops_experiments_events_total", {"outcome": "invalid"})
    return value or 0.0


async def test_an_untagged_call_as_ingest_writes_it_makes_its_task_type_known():
    # ingest writes every optional field, so an untagged call carries "experiment": null
    event = llm_call(task_type="triage", experiment=None)
    assert await _task_types_recorded(json.dumps(event).encode()) == {"triage"}


async def test_a_call_without_the_experiment_field_makes_its_task_type_known():
    event = llm_call(task_type="extract")
    assert await _task_types_recorded(json.dumps(event).encode()) == {"extract"}


ERROR_ON_THE_COST_TOPIC = json.dumps(
    error_event(
        {
            "agent_id": "bot",
            "task_type": "poisoned-task",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "error": {"status_code": 503, "message": "Service unavailable"},
        }
    )
).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"this is not json {",
        b'{"data": {"task_type": "poisoned-task"}}',
        ERROR_ON_THE_COST_TOPIC,  # agent.cost.v1 carries agent.llm_call events only
    ],
    ids=["not JSON", "not an event", "an error event"],
)
async def test_a_record_that_is_not_a_call_event_is_dead_lettered_and_teaches_nothing(body):
    producer = KeptProducer()
    invalid = _invalid()
    assert await _task_types_recorded(body, producer) == set()
    [(topic, value, headers)] = producer.sent
    assert (topic, value, headers["x-attempts"]) == ("agent.cost.v1.dlq", body, b"1")
    assert _invalid() == invalid + 1


class SendingProducer(KeptProducer):
    """Keeps what the forwarder sends, with its partition, and acknowledges it at once."""

    async def send(
        self, topic: str, value: bytes, key: bytes, partition: int, headers: Any = ()
    ) -> Any:
        kept = {"key": key, "partition": bytes([partition]), **dict(headers)}
        self.sent.append((topic, value, kept))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _error(experiment: dict | None) -> dict:
    data = {
        "agent_id": "bot",
        "task_type": "error-only-task",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "error": {"status_code": 503, "message": "Service unavailable"},
        "attempt": 3,
    }
    if experiment is not None:
        data["experiment"] = experiment
    return error_event(data)


async def test_the_error_a_call_gave_up_after_is_forwarded_as_a_failure_of_its_variant():
    # Intention-to-treat: a call assigned to a variant that gave up reaches the experiment
    # as a failure (the SDK tags that error only); untagged errors are read and left, and
    # the give-ups travel in a record of their own (no latency: an older analysis parks
    # that record, not the calls beside it).
    producer = SendingProducer()
    repo = NoExperiments()
    forwarder = _forwarding_to(producer, repo)
    tag = {"id": "exp-1", "variant": "B"}
    call = llm_call(task_type="t", cost_usd=0.01, experiment=tag)
    gave_up, other = _error(tag), _error(None)
    for topic, event in [
        ("agent.error.v1", gave_up),
        ("agent.error.v1", other),
        ("agent.cost.v1", call),
    ]:
        record = SimpleNamespace(topic=topic, value=json.dumps(event).encode())
        await forwarder.forward(record)
    await forwarder.flush()
    records = [decode_tagged(value, h[ARMS_HEADER]) for _, value, h in producer.sent]
    assert sorted(records, key=lambda r: r[0].success) == [
        [Tagged(gave_up["id"], "exp-1", "B", 0.0, False, None, None)],
        [Tagged(call["id"], "exp-1", "B", 0.01, True, 850.0, 0.9, ("openai", "gpt-4o-mini"))],
    ]
    assert {headers["key"] for _, _, headers in producer.sent} == {b"exp-1"}
    assert repo.task_types == {"t"}  # an error teaches no task type (as before)


async def test_a_variants_give_ups_are_sent_before_the_answers_read_with_them():
    # The analysis looks after every call: a slice of answers sent ahead of the give-ups read
    # in the same poll could decide a variant on its answers alone. A full slice of answers
    # sent at once, and the rest at the batch's end, now go after the experiment's give-ups.
    from finops.common.partitions import HANDLE_AT_ONCE

    for answers_first in (False, True):
        producer = SendingProducer()
        forwarder = _forwarding_to(producer)
        tag = {"id": "exp-1", "variant": "B"}
        answers = HANDLE_AT_ONCE - 1 if answers_first else HANDLE_AT_ONCE
        records = [("agent.error.v1", _error(tag))]
        calls = [("agent.cost.v1", llm_call(task_type="t", experiment=tag))] * answers
        for topic, event in [*calls, *records] if answers_first else [*records, *calls]:
            await forwarder.forward(SimpleNamespace(topic=topic, value=json.dumps(event).encode()))
        await forwarder.flush()
        sent = [decode_tagged(value) for _, value, _ in producer.sent]
        assert [(len(r), r[0].success) for r in sent] == [(1, False), (answers, True)]


async def test_a_call_event_on_the_error_topic_is_dead_lettered():
    producer = KeptProducer()
    stop = asyncio.Event()
    body = json.dumps(llm_call(task_type="t", experiment={"id": "x", "variant": "A"})).encode()
    forwarder = TaggedForwarder(
        BufferedConsumer("agent.error.v1", stop, polls=1, body=body),  # type: ignore[arg-type]
        producer=producer,  # type: ignore[arg-type]
        repo=NoExperiments(),  # type: ignore[arg-type]
        events_topic="finops.experiment-events.v1",
        partitions=3,
    )
    await forwarder.run(stop)
    [(topic, value, _)] = producer.sent
    assert (topic, value) == ("agent.error.v1.dlq", body)


async def test_each_forwarded_call_carries_the_arm_it_was_answered_on_in_a_header():
    # The analysis counts the calls answered after a fallback per variant: it compares the
    # model a call was answered on with its variant's. The arms travel in a header, so an
    # analysis of the version before reads the record's calls as it did.
    producer = SendingProducer()
    forwarder = _forwarding_to(producer)
    tag = {"id": "exp-1", "variant": "B"}
    on_variant = llm_call(task_type="t", model="gpt-4o-mini", experiment=tag)
    fell_back = llm_call(
        task_type="t", provider="anthropic", model="claude-3-5-haiku", experiment=tag
    )
    for event in (on_variant, fell_back):
        await forwarder.forward(
            SimpleNamespace(topic="agent.cost.v1", value=json.dumps(event).encode())
        )
    await forwarder.flush()
    [(_, value, headers)] = producer.sent
    assert json.loads(headers[ARMS_HEADER]) == [
        ["openai", "gpt-4o-mini"],
        ["anthropic", "claude-3-5-haiku"],
    ]
    assert len(json.loads(value)[0]) == 7  # the rows an older analysis reads, unchanged
    assert [e.arm for e in decode_tagged(value)] == [None, None]
