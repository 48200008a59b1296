"""Kafka client factories whose reliability settings come from :class:`CommonSettings`."""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, Self

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import AIOKafkaConnection, collect_hosts, create_conn
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
    for_code,
)
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.protocol.metadata import MetadataRequest

from finops.common.catch_up import CatchUp
from finops.common.errors import FinopsError
from finops.common.settings import CommonSettings
from finops.common.topics import ALL_TOPICS, TopicSpec
from finops.common.waiting import wait_until_none_left

log = logging.getLogger(__name__)


#: The security protocols that encrypt: aiokafka refuses them without an SSL context.
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


def ssl_context(settings: CommonSettings) -> ssl.SSLContext | None:
    """The TLS context of a client (None unless the protocol is SSL or SASL_SSL): the
    broker's certificate and host name are verified against ``kafka_ssl_cafile``, or the
    system's CAs."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    cafile = settings.kafka_ssl_cafile
    return ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)


def security_config(settings: CommonSettings) -> dict[str, Any]:
    conf: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        conf["ssl_context"] = context
    if settings.kafka_sasl_mechanism:
        conf.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return conf


def producer_config(settings: CommonSettings, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all" if settings.kafka_acks == "all" else int(settings.kafka_acks),
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": settings.kafka_linger_ms,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "client_id": f"finops-{settings.service_name}",
        **security_config(settings),
    }
    conf.update(overrides)
    return conf


def make_producer(settings: CommonSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica (acks=all)."""
    return AIOKafkaProducer(**producer_config(settings, **overrides))


#: set once the coordinator is wrapped (see :func:`leave_groups_at_generation_zero`)
_leaves_at_generation_zero = False


def leave_groups_at_generation_zero(settings: CommonSettings) -> None:
    """On a broker that numbers group generations from 0, make every consumer of this process
    (aiokafka's, and the Faust apps' built on it) leave its group when it stops.

    aiokafka sends a LeaveGroup only from generation 1 on, where Apache Kafka's first
    generation is; on tansu a stopped first member would hold its group for the whole session
    timeout, and the next member's join (a restarted service's) would wait for it. It wraps
    aiokafka's private ``GroupCoordinator._maybe_leave_group`` (aiokafka 0.14, as locked), so
    ``tests/integration/test_group_leave.py`` checks on the real broker that a stopped member
    is gone. Does nothing unless ``kafka_group_generations_from_zero`` is set; applying it
    twice is harmless.
    """
    global _leaves_at_generation_zero
    if not settings.kafka_group_generations_from_zero or _leaves_at_generation_zero:
        return
    leave_from_generation_one = GroupCoordinator._maybe_leave_group

    async def leave_from_generation_zero(coordinator: GroupCoordinator) -> None:
        if coordinator.generation == 0 and coordinator._group_instance_id is None:
            request = LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
            try:
                await coordinator._send_req(request)
            except KafkaError as err:  # a minimal effort, as aiokafka's own
                log.warning("LeaveGroup request failed: %s", err)
            else:
                log.info("left group %s at generation 0", coordinator.group_id)
        await leave_from_generation_one(coordinator)  # resets the generation

    GroupCoordinator._maybe_leave_group = leave_from_generation_zero  # type: ignore[method-assign]
    _leaves_at_generation_zero = True


def make_consumer(
    settings: CommonSettings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits only what the caller says it has processed."""
    leave_groups_at_generation_zero(settings)
    conf: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "client_id": f"finops-{settings.service_name}",
        **security_config(settings),
    }
    conf.update(overrides)
    return AIOKafkaConsumer(*topics, **conf)


async def start_subscribed(
    consumer: AIOKafkaConsumer,
    topics: Iterable[str],
    listener: ConsumerRebalanceListener | None = None,
) -> None:
    """Start ``consumer``, then subscribe it to ``topics`` in its group.

    The group join runs in the background and the consumer's first ``getmany`` reads once the
    group has assigned it partitions: a service's start-up never waits for a rebalance, which
    lasts up to the session timeout when a previous member went away without leaving (a
    killed process; on tansu, a member of generation 0 unless
    :func:`leave_groups_at_generation_zero` applies). aiokafka's ``start`` would wait for the
    assignment when the consumer was subscribed first.
    """
    await consumer.start()
    consumer.subscribe(list(topics), listener=listener)


def make_admin(settings: CommonSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        **security_config(settings),
    )


async def ensure_topics(
    settings: CommonSettings, specs: Iterable[TopicSpec] = ALL_TOPICS
) -> list[str]:
    """Create every missing topic with its declared partitions and config; return new names.

    A broker that refuses this client (TLS, SASL) or its creation of a topic (ACLs) raises
    :class:`KafkaAccessRefused`."""
    (await _connect(settings)).close()  # a refusal named, not aiokafka's "Unable to bootstrap"
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        created = []
        for spec in wanted:
            topic = NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=settings.kafka_replication_factor,
                topic_configs=spec.config(),
            )
            try:
                answer = await admin.create_topics([topic])
                where = settings.kafka_bootstrap
                _raise_if_refused(answer.to_object()["topic_errors"], settings, where)
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        await admin.close()


#: what a broker answers a client it will not let in: waiting does not change it
AUTHENTICATION_REFUSED = (
    SaslAuthenticationFailed,
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,  # SASL asked of a listener without it
)
AUTHORIZATION_REFUSED = (
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
)


class KafkaAccessRefused(FinopsError):
    """The broker answered, and will not let this client in: a TLS handshake that failed (a
    certificate the CA given does not verify, or for another host name), SASL authentication
    that failed, or an ACL that does not allow what is asked. Waiting does not mend it; the
    message names the ``FINOPS_KAFKA_*`` settings to check, ``details`` the kind (``tls``,
    ``authentication`` or ``authorization``) and those settings.

    A client of the wrong protocol is not told so: a broker just closes the connection of a
    TLS client on a plaintext listener or of a plaintext one on a TLS or SASL listener, as a
    broker that is going away does."""

    code, message = "kafka_access_refused", "the Kafka broker refused this client"

    @classmethod
    def of(cls, error: BaseException, settings: CommonSettings, where: str) -> Self:
        """The refusal ``error`` (a TLS, authentication or authorization error) means."""
        protocol = f"FINOPS_KAFKA_SECURITY_PROTOCOL (now {settings.kafka_security_protocol})"
        user = settings.kafka_sasl_username
        if isinstance(error, ssl.SSLError):
            kind, what, problem = "tls", "TLS handshake failed", "a TLS problem"
            check = [
                protocol,
                "FINOPS_KAFKA_SSL_CAFILE (the CA that signed the broker's certificate; "
                f"now {settings.kafka_ssl_cafile or 'unset: the system CAs'})",
                "FINOPS_KAFKA_BOOTSTRAP (the broker's TLS listener, by a name its certificate "
                "holds)",
            ]
        elif isinstance(error, AUTHORIZATION_REFUSED):
            kind, what, problem = "authorization", "not authorized", "an authorization problem"
            check = [
                f"the ACLs of the Kafka user FINOPS_KAFKA_SASL_USERNAME (now {user or 'unset'}): "
                "it needs Describe on the topics (Create too for create-topics)",
            ]
        else:
            kind, what = "authentication", "SASL authentication failed"
            problem = "an authentication problem"
            check = [
                f"FINOPS_KAFKA_SASL_USERNAME (now {user or 'unset'})",
                "FINOPS_KAFKA_SASL_PASSWORD",
                f"FINOPS_KAFKA_SASL_MECHANISM (now {settings.kafka_sasl_mechanism or 'unset'})",
                protocol,
            ]
        # one line; aiokafka's errors name their class themselves
        named = str(error) if isinstance(error, KafkaError) else f"{type(error).__name__}: {error}"
        reason = " ".join(named.split())
        return cls(
            f"Kafka {what} at {where} ({reason}): {problem}, which waiting will not mend; "
            f"check {', '.join(check)}",
            details={"kind": kind, "where": where, "error": reason, "check": check},
        )


def _connection_config(settings: CommonSettings) -> dict[str, Any]:
    return {
        "client_id": f"finops-{settings.service_name}",
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        **security_config(settings),
    }


async def _connect(settings: CommonSettings) -> AIOKafkaConnection:
    """A connection to the first bootstrap server that takes one, TLS and SASL done.

    Raises :class:`KafkaAccessRefused` as soon as a server refuses this client, and the last
    server's error (``OSError``, ``TimeoutError``, ``KafkaError``) when none answers. Not
    aiokafka's client: its bootstrap logs each server's error and raises only "Unable to
    bootstrap", the same for a wrong password as for a broker that is not up yet."""
    hosts = collect_hosts(settings.kafka_bootstrap, randomize=False)
    last: BaseException = KafkaConnectionError(f"no bootstrap server in {hosts}")
    for host, port, _ in hosts:
        try:
            return await create_conn(host, port, **_connection_config(settings))
        except (ssl.SSLError, *AUTHENTICATION_REFUSED) as exc:
            raise KafkaAccessRefused.of(exc, settings, f"{host}:{port}") from exc
        except (OSError, TimeoutError, KafkaError) as exc:
            last = exc
    raise last


async def missing_topics(
    settings: CommonSettings, specs: Iterable[TopicSpec] = ALL_TOPICS
) -> list[str]:
    """The names of ``specs`` that the broker does not list, in declaration order.

    Raises :class:`KafkaAccessRefused` when the broker refuses this client (TLS, SASL) or says
    it may not see a topic it does not list (a broker does not list topics the client may not
    describe: those are asked for by name, with topic auto-creation off, so that asking does
    not create them), and the connection's error when no broker answers."""
    wanted = [spec.name for spec in specs]
    conn = await _connect(settings)
    try:
        listed = await conn.send(MetadataRequest(None))  # every topic the client may see
        existing = {topic["topic"] for topic in listed.to_object()["topics"]}
        missing = [name for name in wanted if name not in existing]
        if missing:
            named = await conn.send(MetadataRequest(missing, allow_auto_topic_creation=False))
            _raise_if_refused(named.to_object()["topics"], settings, f"{conn.host}:{conn.port}")
    finally:
        conn.close()
    return missing


def _raise_if_refused(topics: list[dict[str, Any]], settings: CommonSettings, where: str) -> None:
    """Raise :class:`KafkaAccessRefused` if the broker answered any of ``topics`` (a response's
    per-topic ``{"topic", "error_code"}``) with an authorization error."""
    refused = [(for_code(t["error_code"]), t["topic"]) for t in topics]
    refused = [(error, name) for error, name in refused if issubclass(error, AUTHORIZATION_REFUSED)]
    if refused:
        error = refused[0][0](f"topics {', '.join(name for _, name in refused)}")
        raise KafkaAccessRefused.of(error, settings, where)


#: a broker that may answer later: not up yet, restarting, slow
NOT_ANSWERING_YET = (OSError, TimeoutError, KafkaError)


async def wait_for_topics(
    settings: CommonSettings,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
) -> list[str]:
    """Wait until every topic of ``specs`` exists, created by someone else (Strimzi's topic
    operator on Kubernetes); return the names still missing after ``timeout_s`` (empty:
    every one exists). An unreachable broker counts as every topic missing, and is asked
    again: a pod may start before Kafka answers. A broker that refuses this client (TLS,
    SASL, ACLs) raises :class:`KafkaAccessRefused` at once: waiting would not mend it."""
    wanted = list(specs)
    return await wait_until_none_left(
        lambda: missing_topics(settings, wanted),
        unanswered=[spec.name for spec in wanted],
        unreachable=NOT_ANSWERING_YET,
        timeout_s=timeout_s,
        poll_s=poll_s,
    )


class TopicReadStalled(RuntimeError):
    """A read of a topic got no records for a long while with some partition still short of
    the end offset the broker reported when the read began (the broker went away, or a
    partition cannot be read): what was read is not the whole topic."""


async def read_topic(
    settings: CommonSettings,
    topic: str,
    *,
    idle_s: float = 1.0,
    timeout_s: float | None = None,
    until: Any = None,
    stall_s: float | None = None,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from the earliest offset, until every partition has reached
    the end offset the broker reported at the start and then nothing arrives for ``idle_s``.

    A read ends only after a poll that returned nothing: a poll returns part of a fetched batch
    and keeps the rest, so on the local tansu broker, whose ListOffsets(latest) is the last
    batch's base offset + 1, reaching that offset means only that the last batch is being read.
    The end offsets are needed too: read to quiet alone, a topic whose first fetch took longer
    than ``idle_s`` (several read at once, a large backlog) counted as empty.  The quiet after
    them takes in what is published while the read runs.

    ``until()`` returning true ends the read early; ``timeout_s`` bounds the reading (after
    the consumer has started), and a read it ends returns what it has read without an error.
    With no record for ``stall_s`` (default: the larger of 30 s and ten times ``idle_s``; at
    least ``idle_s``) while a partition is short of its end offset, :class:`TopicReadStalled`
    is raised rather than the read returning part of the topic as if it were all of it.
    """
    stall = max(30.0, 10 * idle_s) if stall_s is None else max(stall_s, idle_s)
    consumer = make_consumer(settings, group_id=None, fetch_max_bytes=16 * 1024 * 1024)
    try:
        await consumer.start()  # inside: a consumer that failed to start is stopped too
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = CatchUp({tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()})
        quiet_since = time.monotonic()
        deadline = math.inf if timeout_s is None else quiet_since + timeout_s
        while time.monotonic() <= deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            if batch:
                quiet_since = time.monotonic()
                for records in batch.values():
                    for record in records:
                        yield record
                continue  # records may still be buffered: only an empty poll can end the read
            if until is not None and until():
                return
            quiet = time.monotonic() - quiet_since
            if quiet < idle_s:
                continue
            if not await _behind(consumer, topic, ends, stall, deadline):
                return
            if quiet >= stall:
                raise TopicReadStalled(_stalled(topic, ends, quiet))
    finally:
        await consumer.stop()


async def _behind(
    consumer: AIOKafkaConsumer, topic: str, ends: CatchUp, stall: float, deadline: float
) -> bool:
    """Whether some partition is still short of its end offset, asking the consumer's
    positions (which waits on the broker) until ``stall`` seconds or the read's ``deadline``,
    whichever comes first: past ``stall`` the read has stalled, past the deadline it ends."""
    wait = max(min(stall, deadline - time.monotonic()), 0.0)

    async def position(partition: int) -> int:
        return await consumer.position(TopicPartition(topic, partition))

    try:
        return bool(await asyncio.wait_for(ends.behind_now(position), timeout=wait))
    except TimeoutError:
        if time.monotonic() >= deadline:
            return True  # the caller's timeout: the loop ends with what was read
        raise TopicReadStalled(_stalled(topic, ends, wait)) from None


def _stalled(topic: str, ends: CatchUp, quiet: float) -> str:
    short = ", ".join(
        f"partition {p} at {ends.positions.get(p, 'an unknown offset')} of {ends.ends[p]}"
        for p in ends.behind()
    )
    return f"reading {topic}: no record for {quiet:.0f} s with {short}"
