"""Faust apps built the same way for every stream service, with broker quirks from settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.auth import Credentials

from finops.common.kafka import leave_groups_at_generation_zero, producer_acks, ssl_context
from finops.common.settings import CommonSettings
from finops.common.stream_settings import StreamSettings

__all__ = ["StreamSettings", "faust_check", "faust_credentials", "make_faust_app"]


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


def make_faust_app(settings: StreamSettings, **overrides: Any) -> faust.App:
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
        # FINOPS_KAFKA_ACKS, as the aiokafka producers take it (it was -1 whatever it said)
        "producer_acks": producer_acks(settings),
        "broker_credentials": faust_credentials(settings),
        "web_enabled": False,
        "autodiscover": False,
        "datadir": str(Path(settings.data_dir) / "faust" / app_id),
    }
    options.update(overrides)
    return faust.App(app_id, **options)


async def faust_check(app: faust.App) -> None:
    if app.crashed:
        raise RuntimeError(f"stream processor crashed: {app.crash_reason!r}")
    if not app.started:
        raise RuntimeError("stream processor not started")
