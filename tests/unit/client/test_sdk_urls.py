"""A service URL the SDK cannot send to fails at once, never retried for ever: one without
``http://`` or ``https://`` (``FINOPS_INGEST_URL=127.0.0.1:8002``) is refused when the client
is built, naming the argument or the variable it came from; httpx's errors for such a URL,
met while delivering, are a :class:`RequestRefused`, not a fault worth retrying."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from finops.client import (
    AsyncFinOpsClient,
    FinOpsClient,
    FinOpsError,
    InvalidSetting,
    RequestRefused,
)

SERVICES = ["ingest", "auth", "optimizer", "experiments", "healer"]


def _url_of(service: str, url: str) -> dict[str, Any]:
    """The client's keyword argument for ``service``'s address."""
    return {f"{service}_url": url}


@pytest.mark.parametrize("service", SERVICES)
def test_a_url_argument_without_a_scheme_is_refused_when_the_client_is_built(service):
    with pytest.raises(InvalidSetting) as refused:
        AsyncFinOpsClient(agent_id="bot", token="t", **_url_of(service, "127.0.0.1:8002"))
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, FinOpsError)
    assert str(refused.value).startswith(
        f"{service}_url must be an http:// or https:// URL such as http://127.0.0.1:80"
    )
    assert str(refused.value).endswith(", not '127.0.0.1:8002' (no http:// or https:// scheme)")


@pytest.mark.parametrize("client_class", [AsyncFinOpsClient, FinOpsClient])
@pytest.mark.parametrize("variable", ["FINOPS_INGEST_URL", "FINOPS_AUTH_URL"])
def test_a_url_variable_without_a_scheme_is_refused_naming_the_variable(
    monkeypatch, client_class, variable
):
    # the README's agent retried "delivery to 127.0.0.1:8002 failed (UnsupportedProtocol…)"
    # for ever
    monkeypatch.setenv(variable, "127.0.0.1:8002")
    monkeypatch.setenv("FINOPS_API_KEY", "fo_ak_x")
    with pytest.raises(InvalidSetting) as refused:
        client_class(agent_id="bot")
    port = {"FINOPS_INGEST_URL": 8002, "FINOPS_AUTH_URL": 8001}[variable]
    assert str(refused.value) == (
        f"{variable} must be an http:// or https:// URL such as http://127.0.0.1:{port}, not"
        " '127.0.0.1:8002' (no http:// or https:// scheme)"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://ingest:8002", "no http:// or https:// scheme"),
        ("http://", "no host"),
        ("http://ingest:port", "the port is not a number from 0 to 65535"),
        ("http://[::1", "Invalid IPv6 URL"),  # a bare ValueError naming no variable
    ],
)
def test_other_unusable_urls_are_refused_saying_why(url, problem):
    with pytest.raises(InvalidSetting, match=rf"\({problem}\)$"):
        AsyncFinOpsClient(agent_id="bot", token="t", ingest_url=url)


def test_an_argument_wins_over_a_variable_that_holds_no_url(monkeypatch):
    monkeypatch.setenv("FINOPS_INGEST_URL", "127.0.0.1:8002")
    c = AsyncFinOpsClient(agent_id="bot", token="t", ingest_url="https://ingest.example/")
    assert c.ingest_url == "https://ingest.example"


async def _record(c: AsyncFinOpsClient) -> None:
    await c.record_call(
        task_type="qa",
        provider="openai",
        model="gpt-4o-mini",
        usage={"input_tokens": 10, "output_tokens": 2},
        latency_ms=100,
    )


@pytest.mark.parametrize(
    "error",
    [
        httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol."),
        httpx.InvalidURL("Invalid port: 'port'"),
    ],
    ids=["UnsupportedProtocol", "InvalidURL"],
)
@pytest.mark.parametrize("asked", ["ingest", "auth"])
async def test_an_unusable_url_met_while_delivering_is_refused_not_retried(error, asked):
    calls: list[str] = []

    def platform(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/api/auth/token":
            if asked == "auth":
                raise error
            return httpx.Response(200, json={"access_token": "t", "expires_in": 900})
        raise error

    c = AsyncFinOpsClient(
        agent_id="bot",
        api_key="fo_ak_x",
        ingest_url="http://ingest",
        auth_url="http://auth",
        transport=httpx.MockTransport(platform),
        max_backoff_s=0.01,
    )
    await _record(c)
    with pytest.raises(RequestRefused) as refused:
        await c.flush(timeout=10)
    service, path = {"ingest": ("ingest", "/api/events"), "auth": ("auth", "/api/auth/token")}[
        asked
    ]
    assert calls.count(path) == 1  # asked once, not again and again
    assert (refused.value.status, refused.value.code) == (0, None)
    assert refused.value.url == f"http://{service}{path}"
    assert str(refused.value) == (
        f"cannot send a request to http://{service}{path} ({type(error).__name__}: {error});"
        f" {service}_url (or FINOPS_{service.upper()}_URL) must be an http:// or https:// URL"
        f" such as http://127.0.0.1:{ {'ingest': 8002, 'auth': 8001}[service] }"
    )
    assert c.stats.retries == 0
    with pytest.raises(RequestRefused):
        await c.close(timeout=1)


async def test_an_unusable_url_met_asking_the_optimizer_is_refused_not_retried():
    asked: list[str] = []

    def optimizer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        raise httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'.")

    c = AsyncFinOpsClient(
        ingest_url="http://ingest",
        optimizer_url="http://opt",
        agent_id="bot",
        token="t",
        transport=httpx.MockTransport(optimizer),
        max_backoff_s=0.01,
    )
    with pytest.raises(RequestRefused) as refused:
        await c.recommend("qa")
    assert asked == ["/api/recommendations"]  # once: the optimizer gave up after 5 before
    assert str(refused.value).startswith(
        "cannot send a request to http://opt/api/recommendations (UnsupportedProtocol: "
    )
    assert "optimizer_url (or FINOPS_OPTIMIZER_URL) must be an http:// or https:// URL" in str(
        refused.value
    )
    await c.close()


async def _plain_http_server() -> asyncio.Server:
    """A server on loopback that answers every connection in plain HTTP, TLS or not."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize("service", ["ingest", "auth", "optimizer"])
async def test_an_https_url_at_a_server_without_tls_is_refused_not_retried(service):
    # FINOPS_INGEST_URL=https://127.0.0.1:8002 retried for ever (ConnectError:
    # [SSL: WRONG_VERSION_NUMBER]), as a fault worth retrying
    server = await _plain_http_server()
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    credentials: dict[str, Any] = {"api_key": "fo_ak_x"} if service == "auth" else {"token": "t"}
    c = AsyncFinOpsClient(
        agent_id="bot", max_backoff_s=0.01, **_url_of(service, url), **credentials
    )
    try:
        with pytest.raises(RequestRefused) as refused:
            if service == "optimizer":
                await c.recommend("qa")
            else:
                await _record(c)
                await c.flush(timeout=10)
        assert str(refused.value).startswith(f"cannot talk TLS with {url}/api/")
        assert str(refused.value).endswith(
            f"the server does not speak TLS there; is {service}_url (or"
            f" FINOPS_{service.upper()}_URL) http:// rather than https://?"
        )
        assert (refused.value.status, refused.value.code) == (0, None)
        assert c.stats.retries == 0
    finally:
        server.close()
        with contextlib.suppress(RequestRefused):
            await c.close(timeout=1)
