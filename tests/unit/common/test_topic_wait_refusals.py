"""``create_topics --wait`` (the pods' ``wait-topics`` init container) gives up at once when the
broker refuses the client (TLS, SASL, ACLs), and keeps waiting on a broker that does not answer
yet or on topics that do not exist yet.

Refusals are injected as the errors aiokafka raises; two also come from a real handshake on
loopback: a TLS server whose certificate the client does not trust, and a minimal Kafka-protocol
server that answers SASL authentication with error 58 (or topics with error 29), so aiokafka's
own connection code raises them. No broker is started.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.admin import (
    ApiVersionResponse_v0,
    CreateTopicsResponse_v1,
    SaslAuthenticateRequest_v0,
    SaslAuthenticateResponse_v0,
    SaslHandShakeRequest_v1,
    SaslHandShakeResponse_v1,
)
from aiokafka.protocol.metadata import MetadataRequest_v4, MetadataResponse_v4

from finops.common import create_topics, topic_admin
from finops.common.settings import CommonSettings
from finops.common.topic_admin import KafkaAccessRefused, missing_topics, wait_for_topics
from finops.common.topics import ALL_TOPICS

NAMES = [spec.name for spec in ALL_TOPICS]
SASL = {
    "kafka_security_protocol": "SASL_PLAINTEXT",
    "kafka_sasl_mechanism": "PLAIN",
    "kafka_sasl_username": "finops",
    "kafka_sasl_password": "a-wrong-password",
}


class FakeConnection:
    """Answers Metadata requests as a broker listing ``listed`` that answers ``by_name`` (topic
    -> error code) to a request naming topics; keeps every request."""

    host, port = "broker-0", 9093

    def __init__(self, listed: list[str], by_name: dict[str, int] | None = None) -> None:
        self.listed = listed
        self.by_name = by_name or {}
        self.requests: list[Any] = []
        self.closed = False

    async def send(self, request: Any) -> MetadataResponse_v4:
        struct_ = request.prepare({3: (0, 4)})
        self.requests.append(struct_)
        if struct_.topics is None:
            topics = [(0, name, False, []) for name in self.listed]
        else:
            topics = [(self.by_name.get(name, 3), name, False, []) for name in struct_.topics]
        return MetadataResponse_v4(0, [], None, 0, topics)

    def close(self) -> None:
        self.closed = True


def connecting(*answers: BaseException | FakeConnection) -> tuple[Callable[..., Any], list[str]]:
    """A stand-in for aiokafka's ``create_conn`` that gives these answers in turn (the last one
    again and again), and the list of the ``host:port`` it was asked for."""
    asked: list[str] = []

    async def create_conn(host: str, port: int, **config: Any) -> FakeConnection:
        asked.append(f"{host}:{port}")
        answer = answers[min(len(asked), len(answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return create_conn, asked


@pytest.mark.parametrize(
    ("error", "kind", "settings_named"),
    [
        (
            SaslAuthenticationFailed("Authentication failed: Invalid username or password"),
            "authentication",
            ["FINOPS_KAFKA_SASL_USERNAME (now finops)", "FINOPS_KAFKA_SASL_PASSWORD"],
        ),
        (
            UnsupportedSaslMechanismError("enabled mechanisms are ['SCRAM-SHA-512']"),
            "authentication",
            ["FINOPS_KAFKA_SASL_MECHANISM (now PLAIN)"],
        ),
        (IllegalSaslStateError(), "authentication", ["FINOPS_KAFKA_SECURITY_PROTOCOL"]),
        (AuthenticationFailedError(), "authentication", ["FINOPS_KAFKA_SASL_PASSWORD"]),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate"),
            "tls",
            ["FINOPS_KAFKA_SSL_CAFILE", "FINOPS_KAFKA_SECURITY_PROTOCOL (now SASL_PLAINTEXT)"],
        ),
        (
            ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure"),
            "tls",
            ["FINOPS_KAFKA_SSL_CAFILE", "FINOPS_KAFKA_BOOTSTRAP"],
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_a_refusal_ends_the_wait_at_once_naming_the_kind_and_the_settings(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, kind: str, settings_named: list[str]
) -> None:
    fake, asked = connecting(error)
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    settings = CommonSettings(kafka_bootstrap="kafka-0:9093,kafka-1:9093", **SASL)
    with pytest.raises(KafkaAccessRefused) as refused:
        # poll_s=0: had the refusal been waited on, the wait would have asked again and again
        asyncio.run(wait_for_topics(settings, timeout_s=30, poll_s=0))
    assert asked == ["kafka-0:9093"]  # once, and the other server was not tried either
    assert refused.value.code == "kafka_access_refused"
    details = refused.value.details
    assert (details["kind"], details["where"]) == (kind, "kafka-0:9093")
    message = refused.value.message
    assert "\n" not in message
    assert message.startswith("Kafka ")
    problem = {"tls": "a TLS", "authentication": "an authentication"}[kind]
    assert f": {problem} problem, which waiting will not mend; check " in message
    assert all(name in message for name in settings_named), message
    assert "a-wrong-password" not in message


def test_a_broker_that_does_not_answer_yet_is_asked_again_until_it_lists_the_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeConnection(NAMES)
    fake, asked = connecting(
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        KafkaConnectionError("Connection at kafka-0:9093 closed"),
        broker,
    )
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    settings = CommonSettings(kafka_bootstrap="kafka-0:9093", **SASL)
    assert asyncio.run(wait_for_topics(settings, timeout_s=30, poll_s=0)) == []
    assert len(asked) == 4
    assert broker.closed
    assert [r.topics for r in broker.requests] == [None]  # all listed: none asked by name


def test_topics_missing_for_real_are_waited_on_and_never_created_by_asking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = FakeConnection(NAMES[2:])  # the rest: UNKNOWN_TOPIC_OR_PARTITION (3)
    fake, asked = connecting(broker)
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    missing = asyncio.run(wait_for_topics(CommonSettings(), timeout_s=0.2, poll_s=0.01))
    assert missing == NAMES[:2]
    assert len(asked) > 1  # asked again until the timeout
    named = [r for r in broker.requests if r.topics is not None]
    assert named and all(r.topics == NAMES[:2] for r in named)
    assert not any(r.allow_auto_topic_creation for r in named)


def test_topics_the_acls_hide_end_the_wait_at_once_as_an_authorization_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broker lists only the topics the client may describe; asked by name, it says why.
    broker = FakeConnection(NAMES[2:], by_name={NAMES[0]: 29, NAMES[1]: 29})
    fake, asked = connecting(broker)
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    settings = CommonSettings(**SASL)
    with pytest.raises(KafkaAccessRefused) as refused:
        asyncio.run(wait_for_topics(settings, timeout_s=30, poll_s=0))
    assert len(asked) == 1
    assert refused.value.details["kind"] == "authorization"
    assert refused.value.details["error"] == (
        f"[Error 29] TopicAuthorizationFailedError: topics {NAMES[0]}, {NAMES[1]}"
    )
    assert "the ACLs of the Kafka user FINOPS_KAFKA_SASL_USERNAME (now finops)" in (
        refused.value.message
    )
    assert broker.closed


def test_the_command_prints_one_line_and_exits_1_on_a_refusal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, asked = connecting(SaslAuthenticationFailed("Invalid username or password"))
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    monkeypatch.setattr(create_topics, "configure_logging", lambda *args: None)
    for name, value in {**SASL, "kafka_bootstrap": "kafka-0:9093"}.items():
        monkeypatch.setenv(f"FINOPS_{name.upper()}", value)
    assert create_topics.main(["--wait", "300"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == (
        "kafka_access_refused: Kafka SASL authentication failed at kafka-0:9093 "
        "([Error 58] SaslAuthenticationFailed: Invalid username or password): "
        "an authentication problem, which waiting will not mend; check "
        "FINOPS_KAFKA_SASL_USERNAME (now finops), FINOPS_KAFKA_SASL_PASSWORD, "
        "FINOPS_KAFKA_SASL_MECHANISM (now PLAIN), "
        "FINOPS_KAFKA_SECURITY_PROTOCOL (now SASL_PLAINTEXT)\n"
    )
    assert asked == ["kafka-0:9093"]


class RefusingAdmin:
    """An admin client whose broker lists no topic and refuses every creation (error 31)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, topics: list[Any]) -> CreateTopicsResponse_v1:
        self.asked += [topic.name for topic in topics]
        return CreateTopicsResponse_v1(
            [(t.name, 31, "Cluster authorization failed.") for t in topics]
        )


def test_create_topics_refused_by_the_acls_exits_1_instead_of_counting_them_created(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = RefusingAdmin()
    fake, _ = connecting(FakeConnection([]))
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    monkeypatch.setattr(topic_admin, "make_admin", lambda settings: admin)
    monkeypatch.setattr(create_topics, "configure_logging", lambda *args: None)
    monkeypatch.setenv("FINOPS_KAFKA_BOOTSTRAP", "kafka-0:9093")
    assert create_topics.main([]) == 1
    out, err = capsys.readouterr()
    assert "topics ready" not in out
    assert admin.asked == [NAMES[0]]  # the first refusal ends it
    assert err.startswith(
        "kafka_access_refused: Kafka not authorized at kafka-0:9093 ([Error 31] "
        f"ClusterAuthorizationFailedError: topics {NAMES[0]}): an authorization problem"
    ), err
    assert err.count("\n") == 1


class AnsweringAdmin(RefusingAdmin):
    """An admin client whose broker answers each creation with ``code`` (and ``message``)."""

    def __init__(self, code: int, message: str | None) -> None:
        super().__init__()
        self.code, self.message = code, message

    async def create_topics(self, topics: list[Any]) -> CreateTopicsResponse_v1:
        self.asked += [topic.name for topic in topics]
        return CreateTopicsResponse_v1([(t.name, self.code, self.message) for t in topics])


@pytest.mark.parametrize(
    ("code", "message", "exit_code", "created"),
    [
        (0, None, 0, len(NAMES)),
        (36, "Topic already exists.", 0, 0),  # created meanwhile by someone else: fine
    ],
)
def test_create_topics_counts_only_the_topics_the_broker_created(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    code: int,
    message: str | None,
    exit_code: int,
    created: int,
) -> None:
    admin = AnsweringAdmin(code, message)
    fake, _ = connecting(FakeConnection([]))
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    monkeypatch.setattr(topic_admin, "make_admin", lambda settings: admin)
    monkeypatch.setattr(create_topics, "configure_logging", lambda *args: None)
    assert create_topics.main([]) == exit_code
    out, _err = capsys.readouterr()
    assert out.startswith(f"topics ready ({created} created"), out
    assert admin.asked == NAMES


def test_create_topics_answered_another_error_exits_1_instead_of_counting_it_created(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = AnsweringAdmin(38, "Replication factor: 3 larger than available brokers: 1.")
    fake, _ = connecting(FakeConnection([]))
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    monkeypatch.setattr(topic_admin, "make_admin", lambda settings: admin)
    monkeypatch.setattr(create_topics, "configure_logging", lambda *args: None)
    assert create_topics.main([]) == 1
    out, err = capsys.readouterr()
    assert "topics ready" not in out
    assert admin.asked == [NAMES[0]]
    assert err == (
        f"topic_not_created: the Kafka broker did not create topic {NAMES[0]}: "
        "InvalidReplicationFactorError (Replication factor: 3 larger than available "
        "brokers: 1.)\n"
    )


class MetadataClient:
    """The admin's client: counts the metadata refreshes asked of it."""

    def __init__(self) -> None:
        self.refreshed = 0

    async def force_metadata_update(self) -> bool:
        self.refreshed += 1
        return True


class ControllerMovingAdmin(RefusingAdmin):
    """A broker that answers NOT_CONTROLLER (41, retriable) ``moving`` times, then creates."""

    def __init__(self, moving: int) -> None:
        super().__init__()
        self.moving = moving
        self._client = MetadataClient()

    async def create_topics(self, topics: list[Any]) -> CreateTopicsResponse_v1:
        self.asked += [topic.name for topic in topics]
        code = 41 if self.moving > 0 else 0
        self.moving -= 1
        return CreateTopicsResponse_v1([(t.name, code, None) for t in topics])


@pytest.mark.parametrize(("moving", "exit_code"), [(2, 0), (5, 1)])
def test_create_topics_asks_again_while_the_broker_answers_a_retriable_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    moving: int,
    exit_code: int,
) -> None:
    admin = ControllerMovingAdmin(moving)
    fake, _ = connecting(FakeConnection([]))
    monkeypatch.setattr(topic_admin, "create_conn", fake)
    monkeypatch.setattr(topic_admin, "make_admin", lambda settings: admin)
    monkeypatch.setattr(topic_admin, "CREATE_PAUSE_FIRST_S", 0.0)
    monkeypatch.setattr(topic_admin, "CREATE_PAUSE_MAX_S", 0.0)
    monkeypatch.setattr(create_topics, "configure_logging", lambda *args: None)
    assert create_topics.main([]) == exit_code
    out, err = capsys.readouterr()
    if exit_code == 0:
        # the first topic asked three times (two refusals), every other one once
        assert admin.asked == [NAMES[0]] * 3 + NAMES[1:]
        assert admin._client.refreshed == 2  # the controller asked again before each retry
        assert out.startswith(f"topics ready ({len(NAMES)} created")
    else:
        assert admin.asked == [NAMES[0]] * 5  # CREATE_ATTEMPTS, then it gives up
        assert admin._client.refreshed == 4
        assert err.startswith(
            f"topic_not_created: the Kafka broker did not create topic {NAMES[0]}: "
            "NotControllerError"
        ), err


# --- real handshakes on loopback -------------------------------------------------------------


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate: no client trusts it."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_an_untrusted_broker_certificate_ends_the_wait_as_a_tls_problem(
    self_signed: ssl.SSLContext,
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=self_signed)
    port = server.sockets[0].getsockname()[1]
    settings = CommonSettings(kafka_bootstrap=f"127.0.0.1:{port}", kafka_security_protocol="SSL")
    try:
        with pytest.raises(KafkaAccessRefused) as refused:
            await wait_for_topics(settings, timeout_s=30, poll_s=0)
    finally:
        server.close()
        await server.wait_closed()
    details = refused.value.details
    assert (details["kind"], details["where"]) == ("tls", f"127.0.0.1:{port}")
    assert details["error"].startswith("SSLCertVerificationError: ")
    assert "certificate verify failed" in details["error"]


async def _kafka_server(
    answer: Callable[[int, int, bytes], Any],
) -> AsyncIterator[tuple[int, list[tuple[int, int]]]]:
    """A loopback server speaking just enough of the Kafka protocol: each request (header v1)
    goes to ``answer(api_key, api_version, body)``, whose response struct is sent back."""
    seen: list[tuple[int, int]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = await reader.readexactly(size)
                api_key, version, correlation, client_length = struct.unpack(">hhih", frame[:10])
                seen.append((api_key, version))
                response = answer(api_key, version, frame[10 + max(client_length, 0) :])
                body = struct.pack(">i", correlation) + response.encode()
                writer.write(struct.pack(">i", len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


def _versions(*keys: tuple[int, int]) -> ApiVersionResponse_v0:
    return ApiVersionResponse_v0(0, [(key, version, version) for key, version in keys])


@pytest.fixture
async def sasl_refusing() -> AsyncIterator[tuple[int, list[tuple[int, int]]]]:
    def answer(api_key: int, version: int, body: bytes) -> Any:
        if api_key == 18:
            return _versions((18, 0), (17, 1), (36, 0), (3, 4))
        if api_key == 17:
            assert SaslHandShakeRequest_v1.decode(io.BytesIO(body)).mechanism == "PLAIN"
            return SaslHandShakeResponse_v1(0, ["PLAIN"])
        assert api_key == 36
        SaslAuthenticateRequest_v0.decode(io.BytesIO(body))
        return SaslAuthenticateResponse_v0(58, "Authentication failed: Invalid credentials", b"")

    async for server in _kafka_server(answer):
        yield server


async def test_a_wrong_sasl_password_ends_the_wait_as_an_authentication_problem(
    sasl_refusing: tuple[int, list[tuple[int, int]]],
) -> None:
    port, seen = sasl_refusing
    settings = CommonSettings(kafka_bootstrap=f"127.0.0.1:{port}", **SASL)
    with pytest.raises(KafkaAccessRefused) as refused:
        await wait_for_topics(settings, timeout_s=30, poll_s=0)
    assert seen == [(18, 0), (17, 1), (36, 0)]  # asked once: no Metadata, no second try
    assert refused.value.details["kind"] == "authentication"
    assert refused.value.details["error"] == (
        "[Error 58] SaslAuthenticationFailed: Authentication failed: Invalid credentials"
    )


@pytest.fixture
async def acl_hiding() -> AsyncIterator[tuple[int, list[tuple[int, int]]]]:
    """A plaintext broker whose ACLs hide the first declared topic from this client."""
    hidden = NAMES[0]

    def answer(api_key: int, version: int, body: bytes) -> Any:
        if api_key == 18:
            return _versions((18, 0), (3, 4))
        assert (api_key, version) == (3, 4)
        request = MetadataRequest_v4.decode(io.BytesIO(body))
        if request.topics is None:
            return MetadataResponse_v4(0, [], None, 0, [(0, n, False, []) for n in NAMES[1:]])
        assert (request.topics, request.allow_auto_topic_creation) == ([hidden], False)
        return MetadataResponse_v4(0, [], None, 0, [(29, hidden, False, [])])

    async for server in _kafka_server(answer):
        yield server


async def test_a_topic_the_acls_hide_ends_the_wait_as_an_authorization_problem(
    acl_hiding: tuple[int, list[tuple[int, int]]],
) -> None:
    port, seen = acl_hiding
    settings = CommonSettings(kafka_bootstrap=f"127.0.0.1:{port}")
    with pytest.raises(KafkaAccessRefused) as refused:
        await missing_topics(settings)
    assert seen == [(18, 0), (3, 4), (3, 4)]
    assert refused.value.details["kind"] == "authorization"
    assert refused.value.details["error"].endswith(
        f"TopicAuthorizationFailedError: topics {NAMES[0]}"
    )
