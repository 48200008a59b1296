"""FINOPS_KAFKA_ACKS and FINOPS_KAFKA_ENABLE_IDEMPOTENCE reach the Faust apps' producers (the
healer's and the experiments'), as they reach the aiokafka producers: the apps sent with
acks=-1 whatever FINOPS_KAFKA_ACKS said, and never idempotently whatever
FINOPS_KAFKA_ENABLE_IDEMPOTENCE said (faust passes ``enable_idempotence`` only inside a
transaction).

The aiokafka producer Faust would start is built here, never started: no broker is contacted.
It goes through the faust-streaming 0.15 internals :class:`finops.common.streams.StreamApp`
and :class:`~finops.common.streams.StreamProducer` rely on (``App._new_producer``,
``Producer._new_producer`` merging ``_settings_extra()``, ``ThreadedProducer._new_producer``),
so a faust upgrade that changes them fails here. What the built producer was given is read
from aiokafka 0.14's own attributes: an idempotent producer has a transaction manager
(``_txn_manager``, None otherwise) and its sender waits for ``_sender._acks``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from finops.common.kafka import producer_config
from finops.common.streams import StreamProducer, make_faust_app
from finops.experiments.app import create_app as create_experiments_app
from finops.experiments.settings import ExperimentsSettings
from finops.healer.app import create_app as create_healer_app
from finops.healer.settings import HealerSettings

SERVICES = [(create_healer_app, HealerSettings), (create_experiments_app, ExperimentsSettings)]


@asynccontextmanager
async def built(new_producer: Callable[[], AIOKafkaProducer]) -> AsyncIterator[AIOKafkaProducer]:
    """The aiokafka producer ``new_producer`` builds (not started), closed afterwards."""
    producer = new_producer()
    assert isinstance(producer, AIOKafkaProducer)
    try:
        yield producer
    finally:
        await producer.stop()


def is_idempotent(producer: AIOKafkaProducer) -> bool:
    """Whether aiokafka built ``producer`` idempotent (it then has a transaction manager)."""
    return producer._txn_manager is not None


@pytest.mark.parametrize(("create_app", "settings_class"), SERVICES)
@pytest.mark.parametrize(("acks", "expected"), [("all", -1), ("-1", -1), ("1", 1), ("0", 0)])
async def test_the_faust_producer_sends_with_the_acks_setting(
    monkeypatch, create_app, settings_class, acks, expected
):
    monkeypatch.setenv("FINOPS_KAFKA_ACKS", acks)
    # idempotence needs acks=all (aiokafka refuses the others with it)
    monkeypatch.setenv("FINOPS_KAFKA_ENABLE_IDEMPOTENCE", str(expected == -1).lower())
    settings = settings_class()
    faust_app = create_app(settings).state.faust
    assert faust_app.conf.producer_acks == expected
    # what Faust hands the aiokafka producer it builds, next to a plain producer's
    assert faust_app.producer._settings_default()["acks"] == expected
    assert producer_config(settings)["acks"] == expected
    async with built(faust_app.producer._new_producer) as producer:
        assert producer._sender._acks == expected


@pytest.mark.parametrize(("create_app", "settings_class"), SERVICES)
@pytest.mark.parametrize("idempotence", [True, False])
async def test_the_faust_producer_is_idempotent_as_the_setting_says(
    monkeypatch, create_app, settings_class, idempotence
):
    monkeypatch.setenv("FINOPS_KAFKA_ENABLE_IDEMPOTENCE", str(idempotence).lower())
    monkeypatch.delenv("FINOPS_KAFKA_ACKS", raising=False)  # all: what idempotence needs
    settings = settings_class()
    faust_app = create_app(settings).state.faust
    assert isinstance(faust_app.producer, StreamProducer)  # faust still builds it lazily
    assert producer_config(settings)["enable_idempotence"] is idempotence
    async with built(faust_app.producer._new_producer) as producer:
        assert is_idempotent(producer) is idempotence
        assert producer._sender._acks == -1


@pytest.mark.parametrize("idempotence", [True, False])
async def test_the_threaded_faust_producer_is_idempotent_as_the_setting_says(
    monkeypatch, idempotence
):
    """``producer_threaded`` (off in the apps) builds its aiokafka producer apart, from the
    default producer's settings: it takes the setting too."""
    monkeypatch.setenv("FINOPS_KAFKA_ENABLE_IDEMPOTENCE", str(idempotence).lower())
    faust_app = make_faust_app(HealerSettings())
    threaded = faust_app.producer.create_threaded_producer()
    async with built(threaded._new_producer) as producer:
        assert is_idempotent(producer) is idempotence


async def test_a_transaction_producer_stays_idempotent_whatever_the_setting(monkeypatch):
    """Inside a transaction (exactly_once in a worker; the apps use at_least_once) faust needs
    an idempotent producer: its own ``enable_idempotence`` wins over the setting's."""
    monkeypatch.setenv("FINOPS_KAFKA_ENABLE_IDEMPOTENCE", "false")
    faust_app = make_faust_app(HealerSettings(), processing_guarantee="exactly_once")
    faust_app.in_worker = True  # what faust's worker sets; App.in_transaction needs it
    assert faust_app.in_transaction
    extra: dict[str, Any] = dict(faust_app.producer._settings_extra())
    assert extra == {"acks": "all", "enable_idempotence": True}
