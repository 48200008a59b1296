"""The local stack's settings (``FINOPS_`` prefix): its data folder, its ports, and what of
its own it uses instead of the stack's (a database, a Redis, a broker, service URLs)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from finops.common.settings import (
    DEFAULT_PORTS,
    LOCAL_BROKER_ENV,
    DatabaseUrl,
    KafkaBootstrap,
    Port,
    RedisUrl,
    ServiceUrl,
)
from finops.common.topics import OPTIMIZER_EVENTS

DATABASE_NAME = "finops"


class StackSettings(BaseSettings):
    """Where the local stack puts its data and which ports it takes (``FINOPS_`` prefix)."""

    # hide_input_in_errors: a refused value may be a URL holding a password, and a raw
    # validation error can reach a traceback or a log (as CommonSettings does).
    # env_ignore_empty: `FINOPS_OPTIMIZER_URL=` (a CI job's or an .env file's) means "not set",
    # as the SDK takes it, not a malformed URL that stops every command, `finops down` too.
    # allow_inf_nan=False: a timeout of `nan` never expired (`finops up` waited for ever).
    model_config = SettingsConfigDict(
        env_prefix="FINOPS_",
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
        allow_inf_nan=False,
    )

    #: where the stack keeps its data (databases, topics, logs)
    data_dir: Path = Path(".finops")
    #: the address every part of the stack listens on (each has its port below)
    bind_host: str = "127.0.0.1"
    postgres_port: Port = DEFAULT_PORTS["postgres"]
    redis_port: Port = DEFAULT_PORTS["redis"]
    kafka_port: Port = DEFAULT_PORTS["kafka"]
    # the broker's private port behind the gate; 0: any free port
    broker_port: int = Field(0, ge=0, le=65535)
    auth_port: Port = DEFAULT_PORTS["auth"]
    ingest_port: Port = DEFAULT_PORTS["ingest"]
    optimizer_port: Port = DEFAULT_PORTS["optimizer"]
    healer_port: Port = DEFAULT_PORTS["healer"]
    experiments_port: Port = DEFAULT_PORTS["experiments"]
    #: a PostgreSQL of your own instead of the stack's (then the stack starts none)
    database_url: DatabaseUrl | None = None
    #: a Redis of your own instead of the stack's (then the stack starts none)
    redis_url: RedisUrl | None = None
    #: a Kafka broker of your own instead of the stack's (then the stack starts none)
    kafka_bootstrap: KafkaBootstrap | None = None
    #: where the `finops` command reaches the auth service (default: the stack's, on its port)
    auth_url: ServiceUrl | None = None
    #: where the `finops` command reaches ingest (default: the stack's, on its port)
    ingest_url: ServiceUrl | None = None
    #: where the `finops` command reaches the optimizer (default: the stack's, on its port)
    optimizer_url: ServiceUrl | None = None
    #: where the `finops` command reaches the healer (default: the stack's, on its port)
    healer_url: ServiceUrl | None = None
    #: where the `finops` command reaches the experiments service (default: the stack's)
    experiments_url: ServiceUrl | None = None
    #: off: PostgreSQL does not wait for the disk (faster test runs; a power cut can lose data)
    postgres_fsync: bool = True
    # "disk": the broker keeps topics, records and committed offsets in a file-backed S3
    # server (s3rver) under data_dir/kafka, so they survive any restart. "memory": nothing
    # survives a broker restart (faster to start; for throwaway runs).
    kafka_storage: Literal["disk", "memory"] = "disk"
    storage_port: Port = DEFAULT_PORTS["storage"]
    # An S3 server of your own instead of the local one (then nothing is started for it).
    kafka_s3_endpoint: str | None = None
    kafka_s3_bucket: str = "tansu"
    #: the s3rver executable (default: the one `make install` put under .tools/)
    s3rver_bin: Path | None = None
    #: how long `finops up` waits for the infrastructure, then the services, to be ready (s)
    ready_timeout_s: float = Field(90.0, gt=0)
    #: the longest wait before a crashed service is started again (seconds)
    restart_backoff_max_s: float = Field(30.0, ge=0)
    # More than one: the optimizer learns partitioned by task type (FINOPS_PARTITIONED_LEARNING)
    # and the extra workers (optimizer-2, ...) take free ports; at most one per learning
    # partition.
    optimizer_workers: int = Field(1, ge=1, le=OPTIMIZER_EVENTS.partitions)

    def port(self, component: str) -> int:
        return int(getattr(self, f"{component}_port"))

    def service_url(self, service: str) -> str:
        """Where the ``finops`` command reaches ``service``: its ``FINOPS_<SERVICE>_URL``, else
        the stack's port."""
        given: str | None = getattr(self, f"{service}_url")
        return given.strip() if given else f"http://{self.bind_host}:{self.port(service)}"

    def client_addresses(self) -> dict[str, str]:
        """The ``FINOPS_*`` addresses a client of this stack uses (URLs given win over ports),
        and, when its broker is the stack's own, that broker's settings (:data:`LOCAL_BROKER_ENV`,
        as the stack's services get them)."""
        host = self.bind_host
        broker = LOCAL_BROKER_ENV if self.kafka_bootstrap is None else {}
        return {
            **broker,
            "FINOPS_DATABASE_URL": self.database_url
            or f"postgresql://postgres@{host}:{self.postgres_port}/{DATABASE_NAME}",
            "FINOPS_REDIS_URL": self.redis_url or f"redis://{host}:{self.redis_port}/0",
            "FINOPS_KAFKA_BOOTSTRAP": self.kafka_bootstrap or f"{host}:{self.kafka_port}",
            "FINOPS_AUTH_URL": f"http://{host}:{self.auth_port}",
        }
