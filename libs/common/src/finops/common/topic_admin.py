"""Topics as an operator sees them: create the missing ones, wait for those someone else
creates, and tell a broker that refuses this client (TLS, SASL, ACLs) from one that is not
answering yet -- the first is reported at once, the second waited on."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from typing import Any, Self

from aiokafka.admin import NewTopic
from aiokafka.conn import AIOKafkaConnection, collect_hosts, create_conn
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
from aiokafka.protocol.metadata import MetadataRequest
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from finops.common.errors import FinopsError
from finops.common.kafka import make_admin, security_config
from finops.common.settings import CommonSettings
from finops.common.topics import ALL_TOPICS, TopicSpec
from finops.common.waiting import wait_until_none_left

log = logging.getLogger(__name__)


async def ensure_topics(
    settings: CommonSettings, specs: Iterable[TopicSpec] = ALL_TOPICS
) -> list[str]:
    """Create every missing topic with its declared partitions and config; return new names.

    A broker that refuses this client (TLS, SASL) or its creation of a topic (ACLs) raises
    :class:`KafkaAccessRefused`, one that does not answer (not up, a host name that does
    not resolve) :class:`KafkaUnreachable`."""
    try:
        # a refusal named, not aiokafka's "Unable to bootstrap"
        (await _connect(settings)).close()
        admin = make_admin(settings)
        await admin.start()
    except NOT_ANSWERING_YET as exc:
        raise KafkaUnreachable.of(exc, settings) from exc
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
            if await _create(admin, topic, settings):
                created.append(spec.name)
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        await admin.close()


#: how often a creation the broker answered with a retriable error (its controller moving,
#: a timeout) is asked in all, the first pause between two asks and the longest (seconds)
CREATE_ATTEMPTS, CREATE_PAUSE_FIRST_S, CREATE_PAUSE_MAX_S = 5, 0.5, 4.0


class TopicNotCreated(FinopsError):
    """The broker answered a topic's creation with an error other than "it exists already"
    (an invalid replication factor or config, say), or with a retriable one every time it was
    asked: the topic is not there, and starting services on it would fail later and less
    clearly."""

    code, message = "topic_not_created", "the Kafka broker did not create a topic"

    @property
    def retriable(self) -> bool:
        return bool(self.details and self.details.get("retriable"))


async def _refresh_controller(admin: Any) -> None:
    """Ask the cluster again which broker is its controller: aiokafka sends creations to the
    one it has cached and refreshes it only when the send itself fails, not when a topic's
    answer says NOT_CONTROLLER (its client is private; an admin without one is left as is)."""
    client = getattr(admin, "_client", None)
    if client is not None:
        await client.force_metadata_update()


async def _create(admin: Any, topic: NewTopic, settings: CommonSettings) -> bool:
    """Ask the broker to create ``topic``: whether it did (``False``: it existed). An answer
    the broker marks retriable (``NOT_CONTROLLER`` while its controller moves, a timeout) is
    asked again, up to :data:`CREATE_ATTEMPTS` times in all, of the controller the cluster
    names then."""
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(CREATE_ATTEMPTS),
        wait=wait_exponential(multiplier=CREATE_PAUSE_FIRST_S, max=CREATE_PAUSE_MAX_S),
        retry=retry_if_exception(lambda e: isinstance(e, TopicNotCreated) and e.retriable),
        reraise=True,
    ):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                await _refresh_controller(admin)
            answer = await admin.create_topics([topic])
            errors = answer.to_object()["topic_errors"]
            _raise_if_refused(errors, settings, settings.kafka_bootstrap)
            return _created(topic.name, errors)
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def _created(name: str, topic_errors: list[dict[str, Any]]) -> bool:
    """Whether the creation of topic ``name`` succeeded (``False``: someone created it first);
    raises :class:`TopicNotCreated` for any other error the broker answered.

    aiokafka returns these per-topic errors; it does not raise them.

    Examples
    --------
    >>> _created("a", [{"topic": "a", "error_code": 0, "error_message": None}])
    True
    >>> _created("a", [{"topic": "a", "error_code": 36, "error_message": "exists"}])
    False
    >>> answer = {"topic": "a", "error_code": 38, "error_message": "factor 3 > 1 broker"}
    >>> try:
    ...     _created("a", [answer])
    ... except TopicNotCreated as error:
    ...     print(error.message)
    the Kafka broker did not create topic a: InvalidReplicationFactorError (factor 3 > 1 broker)
    """
    for answer in topic_errors:
        code = answer["error_code"]
        if answer["topic"] != name or code == 0:
            continue
        error = for_code(code)
        if issubclass(error, TopicAlreadyExistsError):
            return False
        detail = answer.get("error_message") or error.description
        raise TopicNotCreated(
            f"the Kafka broker did not create topic {name}: {error.__name__} ({detail})",
            details={
                "topic": name,
                "error": error.__name__,
                "error_code": code,
                "retriable": bool(getattr(error, "retriable", False)),
            },
        )
    return True


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


class KafkaUnreachable(FinopsError):
    """No bootstrap server of ``FINOPS_KAFKA_BOOTSTRAP`` answered: none listens there yet, its
    host name does not resolve, or the network does not reach it."""

    code, message = "kafka_unreachable", "no Kafka bootstrap server answered"

    @classmethod
    def of(cls, error: BaseException, settings: CommonSettings) -> Self:
        """What the last server's ``error`` (an ``OSError``, ``TimeoutError`` or
        ``KafkaError``) means, naming the servers tried."""
        named = str(error) if isinstance(error, KafkaError) else f"{type(error).__name__}: {error}"
        reason = " ".join(named.split())  # one line
        bootstrap = settings.kafka_bootstrap
        return cls(
            f"cannot reach Kafka at FINOPS_KAFKA_BOOTSTRAP={bootstrap} ({reason}): check that"
            " the brokers run and that FINOPS_KAFKA_BOOTSTRAP names them",
            details={"bootstrap": bootstrap, "error": reason},
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
    every one exists). An unreachable broker is asked again: a pod may start before Kafka
    answers; one that never answered by ``timeout_s`` raises :class:`KafkaUnreachable` (what
    is wrong is the broker or ``FINOPS_KAFKA_BOOTSTRAP``, not the topics). A broker that
    refuses this client (TLS, SASL, ACLs) raises :class:`KafkaAccessRefused` at once:
    waiting would not mend it."""
    wanted = list(specs)
    answered = False
    last_error: BaseException | None = None

    async def look() -> list[str]:
        nonlocal answered, last_error
        try:
            left = await missing_topics(settings, wanted)
        except NOT_ANSWERING_YET as error:
            last_error = error
            raise
        answered = True
        return left

    missing = await wait_until_none_left(
        look,
        unanswered=[spec.name for spec in wanted],
        unreachable=NOT_ANSWERING_YET,
        timeout_s=timeout_s,
        poll_s=poll_s,
    )
    if missing and not answered and last_error is not None:
        raise KafkaUnreachable.of(last_error, settings)
    return missing
