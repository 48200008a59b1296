"""Reading the platform's HTTP answers: error codes, Retry-After, what is worth retrying."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import wait_random_exponential

from finops.client.errors import RequestRefused

#: each service's address on the local stack: the SDK's default, and the hint of a wrong URL
#: (a stack may run on other ports: the hint says it is the default)
LOCAL_URLS = {
    "ingest": "http://127.0.0.1:8002",
    "auth": "http://127.0.0.1:8001",
    "optimizer": "http://127.0.0.1:8003",
    "experiments": "http://127.0.0.1:8005",
    "healer": "http://127.0.0.1:8004",
}
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: statuses (and codes) that mean the URL points at the wrong place, not a bad request
WRONG_PLACE_STATUS = frozenset({404, 405})
WRONG_PLACE_CODES = frozenset({None, "not_found", "method_not_allowed"})


class Transient(Exception):
    """A fault worth retrying (connection error, timeout, 429, 5xx). ``auth_url`` is set when
    it was the API key's exchange for a token at auth that failed, not the service asked."""

    def __init__(
        self, fault: str, retry_after: float | None = None, *, auth_url: str | None = None
    ) -> None:
        self.fault = fault
        self.auth_url = auth_url
        self.reason = f"auth at {auth_url}: {fault}" if auth_url else fault
        super().__init__(self.reason)
        self.retry_after = retry_after


class RetryAfterOrJitter(wait_random_exponential):
    """Full-jitter exponential backoff that honours a server's Retry-After."""

    def __init__(self, max_s: float) -> None:
        super().__init__(multiplier=0.2, max=max_s)

    def __call__(self, retry_state: Any) -> float:
        backoff = float(super().__call__(retry_state))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after) if retry_after else backoff


def transport_reason(exc: httpx.TransportError | httpx.InvalidURL) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


#: httpx's errors for a URL it cannot send a request to (no http:// or https://, no host):
#: asking again cannot mend them, unlike the other transport errors (UnsupportedProtocol is
#: one of those; InvalidURL is not, and would end delivery with no word of the URL)
UNUSABLE_URL = (httpx.UnsupportedProtocol, httpx.InvalidURL)


def unusable_url(
    service: str, url: str, exc: httpx.UnsupportedProtocol | httpx.InvalidURL
) -> RequestRefused:
    """The refusal for a URL of ``service`` that httpx cannot send to."""
    return RequestRefused(
        f"cannot send a request to {url} ({transport_reason(exc)}); {service}_url (or "
        f"FINOPS_{service.upper()}_URL) must be an http:// or https:// URL such as "
        f"{LOCAL_URLS[service]}",
        status=0,
        code=None,
        url=url,
    )


def tls_refusal(service: str, url: str, exc: httpx.TransportError) -> RequestRefused | None:
    """The refusal for a TLS handshake no retry mends, under a transport error: a
    certificate the client does not trust, or a server that does not speak TLS at an
    ``https://`` URL (``WRONG_VERSION_NUMBER``). ``None`` for any other fault, which stays
    worth retrying (a handshake cut short while a server restarts).

    Examples
    --------
    >>> cause = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    >>> cause.reason = "WRONG_VERSION_NUMBER"
    >>> error = httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number")
    >>> error.__cause__ = cause
    >>> print(tls_refusal("ingest", "https://127.0.0.1:8002/api/events", error))
    ... # doctest: +NORMALIZE_WHITESPACE
    cannot talk TLS with https://127.0.0.1:8002/api/events (ConnectError: [SSL:
    WRONG_VERSION_NUMBER] wrong version number): the server does not speak TLS there; is
    ingest_url (or FINOPS_INGEST_URL) http:// rather than https://?
    >>> tls_refusal("ingest", "http://x", httpx.ConnectError("connection refused")) is None
    True
    """
    cause: BaseException | None = exc
    for _ in range(8):  # httpx's error, httpcore's, then the ssl module's
        if cause is None or isinstance(cause, ssl.SSLError):
            break
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        fix = (
            f"the client does not trust the server's certificate; check {service}_url (or "
            f"FINOPS_{service.upper()}_URL) and the CA bundle (SSL_CERT_FILE)"
        )
    elif isinstance(cause, ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER":
        fix = (
            f"the server does not speak TLS there; is {service}_url (or "
            f"FINOPS_{service.upper()}_URL) http:// rather than https://?"
        )
    else:
        return None
    return RequestRefused(
        f"cannot talk TLS with {url} ({transport_reason(exc)}): {fix}",
        status=0,
        code=None,
        url=url,
    )


def retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return min(float(value), 60.0) if value else None
    except ValueError:
        return None


def transient_status(resp: httpx.Response) -> str:
    """``"HTTP 503 broker_unavailable"`` (the platform's code says which of its dependencies
    failed), or ``"HTTP 502"`` for an answer that is not a FinOps error (a proxy's)."""
    return f"HTTP {status_and_code(resp)}"


def body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text[:500]


def error_of(resp: httpx.Response) -> tuple[str | None, str, Any]:
    """``(code, message, details)`` of a FinOps error answer; code ``None`` for anything else."""
    answer = body(resp)
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None, "", None
    return error["code"], str(error.get("message") or ""), error.get("details")


def describe(resp: httpx.Response) -> str:
    """``"401 invalid_client: unknown API key"``, or the status alone for a foreign answer;
    the fields the answer's details name follow (a 422's, for one):
    ``"422 validation_error: request is invalid (query.unit: String should have at least 1
    character)"`` (the message alone says nothing of what to change)."""
    code, message, details = error_of(resp)
    if code is None:
        return f"{resp.status_code} (not a FinOps error answer)"
    text = f"{resp.status_code} {code}: {message}" if message else f"{resp.status_code} {code}"
    named = [problem for problem in problems(details, "") if problem not in message]
    if named:
        more = f"; and {len(named) - 5} more" if len(named) > 5 else ""
        text += f" ({'; '.join(named[:5])}{more})"
    return text


def status_and_code(resp: httpx.Response) -> str:
    """``"422 invalid_events"`` (or the status alone for a foreign answer)."""
    code = error_of(resp)[0]
    return f"{resp.status_code} {code}" if code else str(resp.status_code)


def points_elsewhere(resp: httpx.Response) -> bool:
    """The answer says the URL is not the service we meant (a 404/405 or a foreign body)."""
    code = error_of(resp)[0]
    return code is None or (resp.status_code in WRONG_PLACE_STATUS and code in WRONG_PLACE_CODES)


def problems(details: Any, fallback: str) -> list[str]:
    """Distinct ``field: message`` strings from an error's details (in order of appearance)."""
    found: dict[str, None] = {}
    for item in details if isinstance(details, list) else []:
        if not isinstance(item, dict):
            continue
        field, message = item.get("field"), item.get("message")
        text = f"{field}: {message}" if field and message else str(field or message or "")
        if text:
            found[text] = None
    return list(found) or ([fallback] if fallback else [])


def wrong_place(
    service: str, url: str, resp: httpx.Response, what: str | None = None
) -> RequestRefused:
    """The refusal for a URL that does not lead to ``service``."""
    return RequestRefused(
        f"{url} {what or 'answered ' + describe(resp)}; is {service}_url the {service} service "
        f"(port {urlsplit(LOCAL_URLS[service]).port} on the local stack by default)?",
        status=resp.status_code,
        code=error_of(resp)[0],
        url=url,
    )
