"""A healer whose start fails half-way (PostgreSQL away for the ledger's restore, the broker
away for a consumer) stops the Kafka clients it had started: none is left open behind the
failed start."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from finops.healer import app as healer_app
from finops.healer.adapters import circuits_stream
from finops.healer.adapters.effectiveness import OutcomeIntake
from finops.healer.domain.classify import ErrorClassifier
from finops.healer.settings import HealerSettings


class Client:
    """A Kafka producer or consumer that says whether it was started and stopped."""

    def __init__(self, *, refuse_start: bool = False) -> None:
        self.refuse_start = refuse_start
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        if self.refuse_start:
            raise KafkaConnectionError("the broker is away")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        return None


def started_left_open(clients: list[Client]) -> list[Client]:
    return [c for c in clients if c.started and not c.stopped]


async def test_a_failed_ledger_restore_stops_the_outcome_intakes_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clients: list[Client] = []

    def client(*args: Any, **kwargs: Any) -> Client:
        clients.append(Client())
        return clients[-1]

    async def restore_fails(self: OutcomeIntake) -> None:
        raise OSError("PostgreSQL is away")

    monkeypatch.setattr(healer_app, "make_producer", client)
    monkeypatch.setattr(healer_app, "make_consumer", client)
    monkeypatch.setattr(OutcomeIntake, "restore", restore_fails)
    app: Any = SimpleNamespace(
        state=SimpleNamespace(db=None, classifier=ErrorClassifier(), circuits=None)
    )
    with pytest.raises(OSError, match="PostgreSQL is away"):
        async with healer_app._advice(app, HealerSettings()):
            pass
    assert len(clients) == 2
    assert any(c.started for c in clients)
    assert started_left_open(clients) == []


async def test_a_breaker_consumer_that_cannot_start_stops_the_pipelines_other_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clients: list[Client] = []

    def client(*args: Any, **kwargs: Any) -> Client:
        # the producer, the forwarding stage's consumer, then the owners' (which fails)
        clients.append(Client(refuse_start=len(clients) == 2))
        return clients[-1]

    monkeypatch.setattr(circuits_stream, "make_producer", client)
    monkeypatch.setattr(circuits_stream, "make_consumer", client)
    settings = HealerSettings()
    pipeline = circuits_stream.breaker_pipeline(
        settings,
        ErrorClassifier,
        published=None,
        store=None,  # type: ignore[arg-type]
    )
    with pytest.raises(KafkaConnectionError):
        async with pipeline:
            pass
    assert len(clients) == 3
    assert [c.started for c in clients] == [True, True, False]
    assert started_left_open(clients) == []


class GoneAfterStart(Client):
    """Starts, then the broker is gone before the topic's partitions are known."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        raise KafkaConnectionError("the broker went away")


async def test_a_circuits_reader_that_fails_after_starting_stops_its_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = GoneAfterStart()
    monkeypatch.setattr(healer_app, "make_consumer", lambda *args, **kwargs: consumer)
    app: Any = SimpleNamespace(state=SimpleNamespace())
    with pytest.raises(KafkaConnectionError):
        async with healer_app._circuits_view(app, HealerSettings()):
            pass
    assert consumer.started
    assert started_left_open([consumer]) == []
