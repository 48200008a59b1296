"""Settings shared by every service: infrastructure addresses, Kafka reliability, auth trust.

Every value reads from the environment with the ``FINOPS_`` prefix, so one set of variables
configures the whole fleet (``FINOPS_DATABASE_URL``, ``FINOPS_REDIS_URL``,
``FINOPS_KAFKA_BOOTSTRAP``, ...). Broker quirks of the local stack are settings too; the
defaults are those of a real Apache Kafka cluster.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from finops.common.known_settings import SETTINGS_VARIABLES

# The checked types of addresses and ports live in settings_values; the services' settings and
# the CLI import Port, KafkaBootstrap, RedisUrl and ServiceUrl from here as before.
from finops.common.settings_values import (
    DatabaseUrl,
    KafkaBootstrap,
    LogLevel,
    Port,
    RedisUrl,
    SecurityProtocol,
    ServiceUrl,
)

PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "changethis", "secret", "password", ""})

DEFAULT_PORTS = {
    "postgres": 55432,
    "redis": 56379,
    "kafka": 59092,
    "storage": 59093,
    "auth": 8001,
    "ingest": 8002,
    "optimizer": 8003,
    "healer": 8004,
    "experiments": 8005,
}

#: Settings for the embedded tansu broker; real Apache Kafka keeps the defaults.
LOCAL_BROKER_ENV = {
    # tansu rejects InitProducerId v0, which idempotent aiokafka producers need.
    "FINOPS_KAFKA_ENABLE_IDEMPOTENCE": "false",
    # tansu makes every group join wait half the session timeout (a consumer's start, a
    # restart, a rebalance). Shorter would start services faster, but 4 s left healer restarts
    # hanging now and then with two test workers on a loaded 2-core machine
    # (tests/integration/healer); 10 s did not.
    "FINOPS_KAFKA_SESSION_TIMEOUT_MS": "10000",
    # tansu numbers a group's generations from 0, and aiokafka sends no LeaveGroup from
    # generation 0: without this a stopped first member held its group for the whole session
    # timeout, and the next member's join waited for it (finops.common.kafka).
    "FINOPS_KAFKA_GROUP_GENERATIONS_FROM_ZERO": "true",
    # tansu answers ListOffsets(latest) with the offset after the first record of a partition's
    # last batch, not the log's end (`finops tail` then reads the last record to find the end).
    "FINOPS_KAFKA_END_OFFSET_IN_LAST_BATCH": "true",
    "FINOPS_FAUST_BROKER_SESSION_TIMEOUT_S": "10",
    "FINOPS_FAUST_BROKER_HEARTBEAT_INTERVAL_S": "1",
}


def unknown_settings(environ: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """One warning for each ``FINOPS_*`` variable of ``environ`` that is no setting of
    ``known``, naming the closest known one when there is one: pydantic-settings ignores an
    unknown variable, so a misspelt setting (``FINOPS_OPTIMZER_WORKERS=2``) was silently not
    applied. ``FINOPS_TEST_*`` belong to the test suite.

    >>> known = ["FINOPS_OPTIMIZER_WORKERS"]
    >>> unknown_settings({"FINOPS_OPTIMZER_WORKERS": "2", "HOME": "/"}, known)
    ['FINOPS_OPTIMZER_WORKERS is not a setting (did you mean FINOPS_OPTIMIZER_WORKERS?); it is \
ignored']
    >>> unknown_settings({"FINOPS_Optimizer_Workers": "2"}, known)  # read whatever the case
    []
    """
    names = sorted({name.upper() for name in known})
    warnings = []
    for variable in sorted(environ):
        # pydantic-settings reads names whatever their case: FINOPS_Optimizer_Workers is one
        upper = variable.upper()
        if not upper.startswith("FINOPS_") or upper.startswith("FINOPS_TEST_"):
            continue
        if upper in names:
            continue
        close = difflib.get_close_matches(upper, names, n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"{variable} is not a setting{hint}; it is ignored")
    return warnings


#: variables read outside the settings classes: where the stack draws its own ports, the
#: SDK's API key, the detached supervisor's mark, and deploy/'s and the benchmarks' own
OTHER_VARIABLES = frozenset(
    {
        "FINOPS_FREE_PORTS",
        "FINOPS_API_KEY",
        "FINOPS_DETACHED",
        "FINOPS_IMAGE",
        "FINOPS_SHARED_DATA",
    }
)


def known_settings() -> frozenset[str]:
    """Every ``FINOPS_*`` variable some part of the platform reads: a variable one service
    does not read may be another's, set for the whole fleet (compose's common environment, a
    shared ConfigMap), and is no mistake.

    The settings classes' variables are a list written into
    :mod:`finops.common.known_settings` by ``python -m finops.common.settings_docs`` (which
    imports every class to write docs/settings.md; a test fails when the list is stale), so a
    service names another's variables without importing its code, which its image may not
    hold."""
    return SETTINGS_VARIABLES | OTHER_VARIABLES


def warn_about_unknown_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """Log :func:`unknown_settings` of ``environ`` (the process's environment), one warning
    each, and return them: every service does at start-up (:func:`finops.common.runner.serve`),
    as the `finops` command does, so a misspelt variable in compose or a Kubernetes manifest
    (``FINOPS_KAFKA_ACK``) is named in the service's log rather than silently ignored."""
    lines = unknown_settings(os.environ if environ is None else environ, known_settings())
    log = logging.getLogger("finops.settings")
    for line in lines:
        log.warning(line)
    return lines


class CommonSettings(BaseSettings):
    """What every service needs to know about the platform around it."""

    # hide_input_in_errors: a refused value may be a URL holding a password, and a service
    # prints the validation error in its log. allow_inf_nan=False: no setting is a number
    # that is not finite (`nan` never compares true, so a threshold or a deadline of `nan`
    # was silently never reached)
    model_config = SettingsConfigDict(
        env_prefix="FINOPS_",
        extra="ignore",
        env_file=None,
        hide_input_in_errors=True,
        allow_inf_nan=False,
    )

    #: the service's name in logs and metrics
    service_name: str = "finops"
    environment: Literal["local", "test", "production"] = Field(
        "local", description="local | test | production"
    )
    #: address the HTTP API listens on
    host: str = "127.0.0.1"
    #: port the HTTP API listens on (each service has its own default)
    port: Port = 8000
    #: DEBUG, INFO, WARNING, ERROR or CRITICAL (one JSON object a line on standard output)
    log_level: LogLevel = "INFO"
    #: where the local stack keeps its data (and auth its keys, without key settings)
    data_dir: Path = Path(".finops")

    #: PostgreSQL (a libpq URL: postgresql:// or postgres://)
    database_url: DatabaseUrl = (
        f"postgresql://postgres@127.0.0.1:{DEFAULT_PORTS['postgres']}/finops"
    )
    #: Redis (a redis://, rediss:// or unix:// URL)
    redis_url: RedisUrl = f"redis://127.0.0.1:{DEFAULT_PORTS['redis']}/0"
    #: the Kafka bootstrap servers (comma-separated host:port)
    kafka_bootstrap: KafkaBootstrap = f"127.0.0.1:{DEFAULT_PORTS['kafka']}"

    #: idempotent producers (Apache Kafka's default): every producer of a service, its Faust
    #: app's (healer, experiments) included, sends a record again after a lost
    #: acknowledgement itself and the broker keeps it once; the local broker turns it off: it
    #: refuses InitProducerId v0
    kafka_enable_idempotence: bool = True
    #: all (every in-sync replica; -1 says the same), 1 (the leader) or 0 (none): what every
    #: producer of a service waits for, its Faust app's (healer, experiments) included; 1 and 0
    #: need FINOPS_KAFKA_ENABLE_IDEMPOTENCE=false (an idempotent producer waits for all)
    kafka_acks: Literal["all", "-1", "1", "0"] = "all"
    kafka_linger_ms: int = Field(5, ge=0)
    kafka_request_timeout_ms: int = Field(15000, gt=0)
    kafka_session_timeout_ms: int = Field(10000, gt=0)
    kafka_heartbeat_interval_ms: int = Field(1000, gt=0)
    #: the broker numbers a group's generations from 0 (tansu; Apache Kafka from 1): a consumer
    #: then leaves its group on stop at generation 0 too
    kafka_group_generations_from_zero: bool = False
    #: the broker answers a partition's end offset with the offset after the first record of
    #: its last batch (tansu; Apache Kafka: the log's end): `finops tail` then reads the last
    #: record to learn where the log ends
    kafka_end_offset_in_last_batch: bool = False
    kafka_replication_factor: int = Field(1, ge=1)
    #: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    #: with SASL: the mechanism as aiokafka names it (PLAIN, SCRAM-SHA-256, ...), and the
    #: credentials below
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    #: with SSL or SASL_SSL: the CA certificates (a PEM file) the brokers' certificates are
    #: checked against, such as Strimzi's cluster CA; unset: the system's CAs
    kafka_ssl_cafile: Path | None = None

    # Token trust: every service verifies tokens itself against auth's JWKS.
    auth_url: ServiceUrl = f"http://127.0.0.1:{DEFAULT_PORTS['auth']}"
    #: the `iss` every token must carry
    jwt_issuer: str = "finops-auth"
    #: the `aud` every token must carry
    jwt_audience: str = "finops"
    # Short, so a key auth stopped publishing stops verifying everywhere within seconds.
    jwks_cache_seconds: float = Field(5.0, gt=0)
    jwks_min_refetch_seconds: float = Field(5.0, ge=0)
    # Stream services freeze their start-up heap out of the garbage collector's full scans
    # (finops.common.gc_pauses); off only to measure what that saves.
    freeze_startup_heap: bool = True
    #: a stream service's background loop (its event intake, the healer's breakers, a reader
    #: of the breakers' states, the healer's label refresh, its Faust app: crashed by a dead
    #: letter the broker refused for good) that ends with an error while the service is not
    #: stopping ends the process, so that what runs it (`finops up`, Kubernetes) starts it
    #: again: a schema an operator has since mended, a bug hit once, an ACL since granted.
    #: Off: the process stays up, answering from what it had learned, and /readyz says the
    #: loop is not running (the test suite, which runs services inside its own process)
    exit_on_loop_failure: bool = True

    #: largest request body accepted (bytes); larger ones get 413 payload_too_large
    max_body_bytes: int = Field(1024 * 1024, gt=0)

    # Addresses (or networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto
    # are believed; none by default, so the client address is the peer's. Comma-separated or
    # a JSON list: FINOPS_TRUSTED_PROXIES=10.0.0.5,10.1.0.0/16
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_token: str | None = Field(
        None,
        description="the bearer token GET /metrics asks for (Authorization: Bearer <token>);"
        " unset: /metrics answers anyone who reaches it",
    )

    # Every PostgreSQL and Redis call is bounded: a server that is down or frozen costs a
    # request about two seconds and a 503 dependency_unavailable, never a hang.
    postgres_connect_timeout_s: float = Field(2.0, gt=0)
    postgres_acquire_timeout_s: float = Field(1.0, gt=0, description="wait for a pool slot")
    postgres_command_timeout_s: float = Field(1.0, gt=0, description="one statement")
    redis_connect_timeout_s: float = Field(1.0, gt=0)
    redis_timeout_s: float = Field(1.0, gt=0, description="one command, or a pool slot")
    dependency_retry_after_s: int = Field(2, ge=1, description="Retry-After of those 503s")

    @field_validator("port")
    @classmethod
    def _port_in_range(cls, value: int) -> int:
        # Port says so too; this holds for a service that declares its own port field without
        # it (a validator applies to the field of that name in every subclass)
        if not 1 <= value <= 65535:
            raise ValueError("should be a port from 1 to 65535")
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _token_without_surrounding_whitespace(cls, value: Any) -> Any:
        # a token read from a file (a Kubernetes secret made --from-file) ends with a newline
        # the scraper's header never has: every scrape would be refused
        return value.strip() if isinstance(value, str) else value

    @field_validator("kafka_sasl_password", "metrics_token")
    @classmethod
    def _refuse_placeholder_secret(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("refusing a placeholder secret; set a real one")
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_passwords(self) -> CommonSettings:
        """Outside the local stack, no service starts with a placeholder password in its
        PostgreSQL or Redis URL (a deployment copied from an example)."""
        if self.environment == "local":
            return self
        for name in ("database_url", "redis_url"):
            # an empty one ("user:@host") is no password (trust, certificates, a .pgpass)
            password = urlsplit(getattr(self, name)).password
            if password and password.strip().lower() in PLACEHOLDER_SECRETS:
                # a rule over a URL's part: its message names the variable
                variable = f"FINOPS_{name.upper()}"
                raise ValueError(f"refusing a placeholder password in {variable}; set a real one")
        return self

    @model_validator(mode="after")
    def _acks_fit_idempotence(self) -> CommonSettings:
        """An idempotent producer waits for every in-sync replica: aiokafka refuses acks 1 or
        0 with it, only when a producer is built, so ``FINOPS_KAFKA_ACKS=1`` alone ended every
        service's start in a ``ValueError`` traceback (and the local stack restarted it for
        ever); now the settings refuse it, naming both variables."""
        if self.kafka_enable_idempotence and self.kafka_acks in ("0", "1"):
            raise ValueError(
                f"FINOPS_KAFKA_ACKS={self.kafka_acks} needs FINOPS_KAFKA_ENABLE_IDEMPOTENCE=false"
                " (an idempotent producer waits for every in-sync replica: acks=all)"
            )
        return self

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        for proxy in value:
            ipaddress.ip_network(proxy, strict=False)  # ValueError names the bad entry
        return value

    @property
    def is_production(self) -> bool:
        return self.environment == "production"
