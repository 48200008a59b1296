"""JwksFromUrl: caching, refetch on unknown kids (rate-limited), surviving auth outages."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from finops.common.auth import JwksFromUrl, StaticKeys, generate_signing_key
from finops.common.auth.tokens import jwks_document
from finops.common.errors import DependencyUnavailable
from finops.common.settings import CommonSettings


class FakeAuth:
    """An httpx transport that serves a JWKS and counts the requests it gets."""

    def __init__(self, *keys) -> None:
        self.keys = list(keys)
        self.requests = 0
        self.failing = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.failing:
            return httpx.Response(503, json={"error": "down"})
        return httpx.Response(200, json=jwks_document(self.keys))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys():
    return generate_signing_key(), generate_signing_key()


class SlowAuth(FakeAuth):
    """Answers only once ``answer`` is set: an auth service that is slow or frozen."""

    def __init__(self, *keys) -> None:
        super().__init__(*keys)
        self.answer = asyncio.Event()
        self.answer.set()

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        await self.answer.wait()
        return super().handler(request)


def source(auth: FakeAuth, clock: Clock, **kwargs) -> JwksFromUrl:
    client = httpx.AsyncClient(transport=httpx.MockTransport(auth.handler))
    return JwksFromUrl(
        "http://auth/.well-known/jwks.json",
        client=client,
        clock=clock,
        cache_seconds=kwargs.get("cache_seconds", 300),
        min_refetch_seconds=kwargs.get("min_refetch_seconds", 5),
        stale_wait_seconds=kwargs.get("stale_wait_seconds", 0.5),
    )


async def test_keys_are_cached_for_cache_seconds(keys):
    auth, clock = FakeAuth(keys[0]), Clock()
    jwks = source(auth, clock)
    for _ in range(10):
        assert (await jwks.key_for(keys[0].kid)).kid == keys[0].kid
    assert auth.requests == 1
    clock.now += 301
    assert await jwks.key_for(keys[0].kid)
    assert auth.requests == 2


async def test_an_unknown_kid_refetches_at_most_once_per_interval(keys):
    old, new = keys
    auth, clock = FakeAuth(old), Clock()
    jwks = source(auth, clock)
    assert await jwks.key_for(old.kid)
    auth.keys = [new, old]  # auth rotated
    clock.now += 6
    assert (await jwks.key_for(new.kid)).kid == new.kid
    assert auth.requests == 2
    for _ in range(20):
        assert await jwks.key_for("made-up-kid") is None
    assert auth.requests == 2  # within min_refetch_seconds of the last fetch: no request
    clock.now += 6
    assert await jwks.key_for("another-made-up-kid") is None
    assert auth.requests == 3


async def test_a_key_auth_stopped_publishing_is_refused_once_the_cache_is_stale(keys):
    old, new = keys
    auth, clock = FakeAuth(new, old), Clock()
    cache_seconds = CommonSettings().jwks_cache_seconds  # the platform's default
    assert cache_seconds <= 10
    jwks = source(auth, clock, cache_seconds=cache_seconds)
    assert (await jwks.key_for(old.kid)).kid == old.kid
    auth.keys = [new]  # a second rotation dropped the old key
    clock.now += cache_seconds - 0.5
    assert (await jwks.key_for(old.kid)).kid == old.kid  # cached: no request yet
    assert auth.requests == 1
    clock.now += 1
    assert await jwks.key_for(old.kid) is None
    assert (await jwks.key_for(new.kid)).kid == new.kid
    assert auth.requests == 2


async def test_a_slow_auth_does_not_hold_up_requests_with_a_known_key(keys):
    old, new = keys
    auth, clock = SlowAuth(new, old), Clock()
    jwks = source(auth, clock, cache_seconds=5, stale_wait_seconds=0.01)
    assert await jwks.key_for(old.kid)
    auth.answer.clear()  # auth freezes
    auth.keys = [new]
    clock.now += 6
    answers = await asyncio.gather(*(jwks.key_for(old.kid) for _ in range(20)))
    assert {key.kid for key in answers} == {old.kid}  # the known key, without waiting for auth
    assert jwks.fetches == 2  # one refresh, shared (auth has not answered it yet)
    auth.answer.set()
    await jwks.refreshed()
    assert await jwks.key_for(old.kid) is None
    await jwks.aclose()


async def test_known_keys_keep_working_while_auth_is_down(keys):
    auth, clock = FakeAuth(keys[0]), Clock()
    jwks = source(auth, clock)
    assert await jwks.key_for(keys[0].kid)
    auth.failing = True
    clock.now += 400  # cache expired, refetch fails
    assert (await jwks.key_for(keys[0].kid)).kid == keys[0].kid


async def test_no_keys_at_all_is_unavailable_not_unauthenticated(keys):
    auth, clock = FakeAuth(keys[0]), Clock()
    auth.failing = True
    with pytest.raises(DependencyUnavailable):
        await source(auth, clock).key_for(keys[0].kid)


async def test_static_keys_are_replaced_after_a_rotation(keys):
    static = StaticKeys.of(keys[0])
    assert await static.key_for(keys[0].kid) and await static.key_for(keys[1].kid) is None
    static.replace(jwks_document(keys))
    assert static.kids == {keys[0].kid, keys[1].kid}


def test_unusable_jwks_entries_are_skipped(keys):
    good = keys[0].public_jwk()
    document = {
        "keys": [
            good,
            {**keys[1].public_jwk(), "alg": "HS256"},
            {**keys[1].public_jwk(), "use": "enc"},
            {"kty": "oct", "kid": "x", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": "bad"},
            "not an object",
        ]
    }
    assert StaticKeys(document).kids == {keys[0].kid}
    assert StaticKeys({"keys": "nope"}).kids == frozenset()


async def test_its_own_http_client_is_built_at_start_up_not_at_the_first_request(keys, monkeypatch):
    # Building an httpx client loads the CA bundle (tens of ms with the GIL held): done at
    # the first authenticated request, it stalled every request in flight.
    auth = FakeAuth(keys[0])
    built: list[str] = []
    real_client = httpx.AsyncClient

    def client(**kwargs) -> httpx.AsyncClient:
        built.append("client")
        return real_client(transport=httpx.MockTransport(auth.handler), **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", client)
    jwks = JwksFromUrl("http://auth/.well-known/jwks.json")
    assert built == ["client"]
    assert (await jwks.key_for(keys[0].kid)).kid == keys[0].kid
    assert (built, auth.requests) == (["client"], 1)
    await jwks.aclose()


async def test_a_new_kid_while_auth_is_down_is_unavailable_not_an_unknown_key(keys):
    """Auth rotated, then stopped answering: a token signed with its new key cannot be judged,
    so it is 503 (try again), not 401 (its token is refused); once auth answers, it verifies."""
    old, new = keys
    auth, clock = FakeAuth(old), Clock()
    jwks = source(auth, clock)
    assert await jwks.key_for(old.kid)
    auth.keys, auth.failing = [new, old], True
    clock.now += 6
    with pytest.raises(DependencyUnavailable):
        await jwks.key_for(new.kid)  # the refetch fails
    with pytest.raises(DependencyUnavailable):
        await jwks.key_for(new.kid)  # within min_refetch_seconds: no refetch, still unknown
    assert (await jwks.key_for(old.kid)).kid == old.kid  # known keys keep working
    auth.failing = False
    clock.now += 6
    assert (await jwks.key_for(new.kid)).kid == new.kid
    assert await jwks.key_for("made-up-kid") is None  # auth answered: unknown is unknown
