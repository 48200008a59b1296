"""Faust apps built the same way for every stream service, with broker quirks from settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust
from faust.auth import Credentials
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.transports import ProducerT, TransportT

from finops.common.kafka import leave_groups_at_generation_zero, producer_acks, ssl_context
from finops.common.settings import CommonSettings
from finops.common.stream_settings import StreamSettings

__all__ = [
    "StreamApp",
    "StreamProducer",
    "StreamSettings",
    "faust_check",
    "faust_credentials",
    "make_faust_app",
]


def faust_credentials(settings: CommonSettings) -> Credentials | None:
    """The Kafka security settings (``FINOPS_KAFKA_SECURITY_PROTOCOL``, ``…_SASL_*``,
    ``…_SSL_CAFILE``) as Faust takes them: the same as the aiokafka clients'
    (:func:`finops.common.kafka.security_config`)."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None  # PLAINTEXT


class StreamProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer, idempotent or not as ``FINOPS_KAFKA_ENABLE_IDEMPOTENCE`` says.

    faust-streaming (0.15) passes ``enable_idempotence`` to the ``AIOKafkaProducer`` it
    builds only inside a transaction (``Producer._settings_extra``), so the apps'
    producer (their dead letters: :func:`finops.common.dead_letters.faust_handle`) was never
    idempotent whatever the setting said. It relies on faust internals:
    ``Producer._new_producer`` (and ``ThreadedProducer._new_producer``, through the default
    producer) builds the aiokafka producer from ``_settings_default()``, ``_settings_auth()``
    and ``_settings_extra()`` merged in that order; ``tests/unit/common/test_faust_producer.py``
    fails when that changes.

    Parameters
    ----------
    transport
        The app's transport (faust's aiokafka one).
    enable_idempotence
        Whether the aiokafka producer is idempotent (it then needs acks=all, which
        :class:`~finops.common.settings.CommonSettings` makes sure of).
    **kwargs
        What faust's ``Producer`` takes (``loop``, ``beacon``).
    """

    def __init__(self, transport: TransportT, *, enable_idempotence: bool, **kwargs: Any) -> None:
        self.enable_idempotence = enable_idempotence
        super().__init__(transport, **kwargs)

    def _settings_extra(self) -> Mapping[str, Any]:
        # faust's own (a transaction's idempotent acks=all producer) wins over the setting
        return {"enable_idempotence": self.enable_idempotence, **super()._settings_extra()}


class StreamApp(faust.App):
    """A Faust app whose producer is a :class:`StreamProducer`.

    It overrides faust's ``App._new_producer`` (faust-streaming 0.15: the one place the app's
    producer is built, ``transport.create_producer(loop=..., beacon=...)``), so the producer
    is still built lazily, on first use, as faust does.

    Parameters
    ----------
    id
        The app's id (its consumer group).
    enable_idempotence
        ``FINOPS_KAFKA_ENABLE_IDEMPOTENCE``: whether its producer is idempotent.
    **options
        Faust's settings.
    """

    def __init__(self, id: str, *, enable_idempotence: bool, **options: Any) -> None:
        self.enable_idempotence = enable_idempotence
        super().__init__(id, **options)

    def _new_producer(self) -> ProducerT:
        return StreamProducer(
            self.transport,
            enable_idempotence=self.enable_idempotence,
            loop=self.loop,
            beacon=self.beacon,
        )


def make_faust_app(settings: StreamSettings, **overrides: Any) -> StreamApp:
    """An at-least-once Faust app; handlers must be idempotent on the event id."""
    leave_groups_at_generation_zero(settings)
    app_id = settings.faust_app_id
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(","))
    options: dict[str, Any] = {
        "broker": brokers,
        "store": settings.faust_store,
        "processing_guarantee": "at_least_once",
        "topic_replication_factor": settings.kafka_replication_factor,
        "topic_partitions": settings.faust_topic_partitions,
        "broker_session_timeout": settings.faust_broker_session_timeout_s,
        "broker_heartbeat_interval": settings.faust_broker_heartbeat_interval_s,
        "table_standby_replicas": settings.faust_table_standby_replicas,
        "consumer_auto_offset_reset": "earliest",
        # FINOPS_KAFKA_ACKS, as the aiokafka producers take it (it was -1 whatever it said);
        # FINOPS_KAFKA_ENABLE_IDEMPOTENCE reaches the producer through StreamApp
        "producer_acks": producer_acks(settings),
        "broker_credentials": faust_credentials(settings),
        "web_enabled": False,
        "autodiscover": False,
        "datadir": str(Path(settings.data_dir) / "faust" / app_id),
    }
    options.update(overrides)
    return StreamApp(app_id, enable_idempotence=settings.kafka_enable_idempotence, **options)


async def faust_check(app: faust.App) -> None:
    if app.crashed:
        raise RuntimeError(f"stream processor crashed: {app.crash_reason!r}")
    if not app.started:
        raise RuntimeError("stream processor not started")
