"""Bearer tokens for the SDK: a fixed token, or an API key exchanged at auth and renewed."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from finops.client._answers import (
    RETRYABLE_STATUS,
    UNUSABLE_URL,
    Transient,
    describe,
    error_of,
    points_elsewhere,
    retry_after,
    tls_refusal,
    transient_status,
    transport_reason,
    unusable_url,
    wrong_place,
)
from finops.client.errors import RequestRefused

#: renew this long before the token expires (half its lifetime for a token of under a minute)
RENEW_EARLY_S = 30.0


class Tokens:
    """Hands out a bearer token; with an API key, exchanges it and renews it when needed.

    A refused token is renewed once; when the fresh token is refused too, or the token was
    given fixed, the refusal is final (:class:`RequestRefused`).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        auth_url: str,
        agent_id: str,
        *,
        api_key: str | None,
        token: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        #: monotonic seconds: when a token is renewed (a test's clock, not the wall's)
        self.clock = clock
        self.auth_url = auth_url
        self.agent_id = agent_id
        self.api_key = api_key
        self._token = token
        self._renew_at = float("inf") if token else 0.0
        self._renewed_after_refusal = False

    async def bearer(self) -> str:
        if self._token and self.clock() < self._renew_at:
            return self._token
        if not self.api_key:
            assert self._token is not None
            return self._token
        return await self._exchange()

    def accepted(self) -> None:
        """A service accepted the current token."""
        self._renewed_after_refusal = False

    def refused(self, service: str, url: str, resp: httpx.Response) -> None:
        """A 401 from ``service``: raise :class:`Transient` to renew once, else the refusal."""
        if self.api_key and not self._renewed_after_refusal:
            self._renewed_after_refusal = True
            self._renew_at = 0.0  # exchange the key again
            raise Transient("token refused; renewing")
        if self.api_key:
            message = (
                f"{service} at {url} refused a fresh token from {self.auth_url} "
                f"({describe(resp)}); do {service} and auth belong to the same platform "
                f"(its FINOPS_AUTH_URL)?"
            )
        else:
            message = (
                f"{service} at {url} refused the bearer token ({describe(resp)}); pass a "
                "valid token, or an api_key so the client renews tokens itself"
            )
        raise RequestRefused(message, status=401, code=error_of(resp)[0], url=url)

    async def _exchange(self) -> str:
        url = f"{self.auth_url}/api/auth/token"
        try:
            resp = await self.http.post(
                url, data={"grant_type": "client_credentials", "client_secret": self.api_key}
            )
        except UNUSABLE_URL as exc:
            raise unusable_url("auth", url, exc) from exc
        except httpx.TransportError as exc:
            transient = Transient(transport_reason(exc), auth_url=self.auth_url)
            raise tls_refusal("auth", url, exc) or transient from exc
        if resp.status_code in RETRYABLE_STATUS:
            fault = transient_status(resp)
            raise Transient(fault, retry_after(resp), auth_url=self.auth_url)
        if resp.status_code == 200:
            return self._keep(resp, url)
        code = error_of(resp)[0]
        if code == "invalid_client":
            raise RequestRefused(
                f"the auth service at {self.auth_url} refused the API key ({describe(resp)}); "
                f"check api_key: it must be an active key (fo_ak_…) of agent {self.agent_id!r}",
                status=resp.status_code,
                code=code,
                url=url,
            )
        if points_elsewhere(resp):
            raise wrong_place("auth", url, resp)
        raise RequestRefused(
            f"the auth service at {self.auth_url} refused the token request ({describe(resp)})",
            status=resp.status_code,
            code=code,
            url=url,
        )

    def _keep(self, resp: httpx.Response, url: str) -> str:
        try:
            answer = resp.json()
            token, expires_in = str(answer["access_token"]), float(answer.get("expires_in", 900))
        except (ValueError, KeyError, TypeError) as exc:
            raise wrong_place("auth", url, resp, "answered 200 without an access token") from exc
        self._token = token
        # a token of 30 s (auth's least) renewed 30 s early was renewed at every request
        self._renew_at = self.clock() + expires_in - min(RENEW_EARLY_S, expires_in / 2)
        return token
