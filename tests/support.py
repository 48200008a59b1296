"""Helpers shared by integration and e2e tests (import as ``from support import ...``)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import uvicorn

from finops.common.auth import StaticKeys, TokenSigner, generate_signing_key, scopes_for
from finops.common.events import llm_call_event
from finops.common.kafka import read_topic
from finops.common.settings import CommonSettings

UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@contextlib.asynccontextmanager
async def own_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A database of its own (``<prefix>_<random>``) on the PostgreSQL server of
    ``server_url``, with no schema: its URL; dropped afterwards, connections and all."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    server = await asyncpg.connect(server_url)
    await server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        await server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await server.close()


def agent_mismatch_error(agent_id: str) -> dict[str, Any]:
    """The ``error`` of a 403 answer to a caller naming ``agent_id``, not its own, without
    ``events:write:any`` (``Principal.require_speaks_for``)."""
    return {
        "code": "agent_mismatch",
        "message": f"agent_id {agent_id!r} is not the caller's; acting for another agent "
        "needs events:write:any",
        "details": {
            "field": "agent_id",
            "agent_id": agent_id,
            "required_scope": "events:write:any",
        },
    }


#: why a bound account may not name a team (``Principal.require_may_claim_team``, ingest)
NOT_A_BOUND_TEAM = (
    "is not one of the teams the caller's account is bound to:"
    " an admin binds it to another (PUT /api/users/{id}/teams)"
)


def team_mismatch_detail(index: int, team: str) -> dict[str, Any]:
    """Ingest's detail of the event at ``index`` of a batch refused 403 ``team_mismatch``."""
    return {
        "index": index,
        "field": "data.team",
        "team": team,
        "message": f"{team!r} {NOT_A_BOUND_TEAM}",
    }


def team_mismatch_error(team: str) -> dict[str, Any]:
    """The ``error`` of a 403 answer to a caller bound to its teams naming ``team``, not one
    of them, without ``events:write:any`` (``Principal.require_may_claim_team``)."""
    return {
        "code": "team_mismatch",
        "message": f"team {team!r} {NOT_A_BOUND_TEAM}",
        "details": {"field": "team", "team": team, "required_scope": "events:write:any"},
    }


class EmptyBlocklist:
    """A token blocklist that holds nothing (the verifier's Redis ``mget``): no token revoked."""

    async def mget(self, keys: list[str]) -> list[None]:
        return [None] * len(keys)


class TokenFactory:
    """Mints real RS256 tokens that services verify through :class:`StaticKeys`.

    They live a day, not the settings' access-token lifetime: modules mint theirs at import,
    when pytest-xdist collects, and on a loaded machine a module may run 20 minutes later.
    """

    #: long enough for a whole suite run between a module's import and its last test
    TTL_SECONDS = 24 * 3600

    def __init__(self, settings: CommonSettings | None = None) -> None:
        settings = settings or CommonSettings()
        self.key = generate_signing_key()
        self.keys = StaticKeys.of(self.key)
        self.signer = TokenSigner(
            self.key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )

    def token(
        self,
        username: str = "bot",
        role: str = "agent",
        scopes: Iterable[str] | None = None,
        subject: str | None = None,
        teams: Iterable[str] | None = None,
    ) -> str:
        return self.signer.issue(
            subject=subject or str(uuid.uuid4()),
            username=username,
            role=role,
            scopes=scopes if scopes is not None else scopes_for(role),
            ttl_seconds=self.TTL_SECONDS,
            teams=teams,
        ).token


def finops_piped(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``finops`` command as ``finops ... | grep`` runs it: no terminal, no ``COLUMNS``;
    ``env`` over this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "finops.cli", *args],
        env={k: v for k, v in {**os.environ, **env}.items() if k != "COLUMNS"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def llm_call(agent: str = "bot", *, at: datetime | None = None, **data: Any) -> dict[str, Any]:
    """A valid ``agent.llm_call`` event of ``agent`` (finished ``at``, default now), its data
    the defaults below updated with ``data``."""
    body: dict[str, Any] = {
        "agent_id": agent,
        "task_type": "summarize",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "usage": {"input_tokens": 1200, "output_tokens": 300},
        "latency_ms": 850,
        "success": True,
        "quality": 0.9,
    }
    body.update(data)
    return llm_call_event(body, time=at)


def json_bytes(content: Any) -> bytes:
    """The bytes Starlette's ``JSONResponse`` sends for ``content``."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def answered_through(model: Any, content: Any) -> bytes:
    """The bytes a route with ``response_model=model`` (and a ``JSONResponse`` class) sends
    when it returns ``content``: validated, dumped in JSON mode, then ``json.dumps``."""
    from pydantic import TypeAdapter

    adapter = TypeAdapter(model)
    return json_bytes(adapter.dump_python(adapter.validate_python(content), mode="json"))


async def publish(settings: CommonSettings, topic: str, events: Iterable[dict[str, Any]]) -> None:
    """Produce each event as JSON to ``topic``, keyed by its agent, one acknowledged at a time."""
    from finops.common.kafka import make_producer

    producer = make_producer(settings)
    await producer.start()
    try:
        for e in events:
            key = str(e["data"]["agent_id"]).encode()
            await producer.send_and_wait(topic, json.dumps(e).encode(), key=key)
    finally:
        await producer.stop()


async def send_acknowledged(producer: Any, topic: str, events: Iterable[dict[str, Any]]) -> None:
    """Send each event as JSON to ``topic`` with a started aiokafka ``producer``, keyed by its
    agent, and return once the broker acknowledged every one: a failed send raises here, where
    ``flush()`` alone would return and leave the test waiting for events that never come."""
    acks = [
        await producer.send(topic, json.dumps(e).encode(), key=str(e["data"]["agent_id"]).encode())
        for e in events
    ]
    await asyncio.gather(*acks)


def _until(timeout: float) -> Iterator[None]:
    """One step per try until ``timeout`` seconds from now have passed (monotonic clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield


def _timed_out(timeout: float, what: str, detail: str = "") -> AssertionError:
    return AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


class CountProgress:
    """A count polled until it reaches a target, failing only once it stops growing.

    A catch-up (a consumer counting what a test published) takes as long as the machine
    needs; what a test must catch is a count that has stalled. ``stall_s`` is how long the
    count may stay put before the wait fails.
    """

    def __init__(
        self,
        target: int,
        stall_s: float,
        what: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target, self.stall_s, self.what, self.clock = target, stall_s, what, clock
        self.best: int | None = None
        self.grew_at = clock()

    def done(self, count: int) -> bool:
        """Whether ``count`` reached the target; raises once it has not grown for stall_s."""
        if count >= self.target:
            return True
        now = self.clock()
        if self.best is None or count > self.best:
            self.best, self.grew_at = count, now
        elif now - self.grew_at >= self.stall_s:
            raise AssertionError(
                f"{self.what}: stuck at {self.best} of {self.target} for {self.stall_s}s"
            )
        return False


def wait_for_count(
    read: Callable[[], int],
    target: int,
    stall_s: float,
    what: str,
    interval: float = 0.3,
    detail: Callable[[], str] = str,
) -> int:
    """Block until ``read()`` reaches ``target``; fail when it stays put for ``stall_s``
    seconds (:class:`CountProgress`), with ``detail()`` appended."""
    progress = CountProgress(target, stall_s, what)
    while True:
        count = read()
        try:
            if progress.done(count):
                return count
        except AssertionError as stuck:
            raise AssertionError(f"{stuck}{detail()}") from None
        time.sleep(interval)


async def wait_until_count(
    read: Callable[[], Any],
    target: int,
    stall_s: float,
    what: str,
    interval: float = 0.1,
    detail: Callable[[], str] = str,
) -> int:
    """:func:`wait_for_count` for an async ``read`` (or a plain one), on the event loop."""
    progress = CountProgress(target, stall_s, what)
    while True:
        count = read()
        if inspect.isawaitable(count):
            count = await count
        try:
            if progress.done(int(count)):
                return int(count)
        except AssertionError as stuck:
            raise AssertionError(f"{stuck}{detail()}") from None
        await asyncio.sleep(interval)


async def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll a plain or async ``condition`` until it is truthy (its value is returned); fail
    with ``what`` after ``timeout`` seconds. The event loop runs between tries."""
    for _ in _until(timeout):
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise _timed_out(timeout, what)


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.2,
    detail: Callable[[], str] = str,
) -> Any:
    """:func:`wait_until` for code without an event loop: blocks between tries. On timeout the
    failure ends with ``detail()`` (e.g. the log tails of what did not get ready)."""
    for _ in _until(timeout):
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise _timed_out(timeout, what, detail())


async def ids_on_topic(
    settings: CommonSettings,
    topic: str,
    *,
    expect: set[str] | None = None,
    idle_s: float = 1.5,
    timeout: float = 120,
) -> list[str]:
    """Every event id on ``topic`` (with repeats), read from the earliest offset.

    Stops when ``expect`` is covered (or, without ``expect``, after ``idle_s`` of quiet).
    """
    seen: list[str] = []
    found: set[str] = set()
    quiet = idle_s if expect is None else timeout
    async for record in read_topic(
        settings,
        topic,
        idle_s=quiet,
        timeout_s=timeout,
        until=(lambda: expect <= found) if expect is not None else None,
    ):
        event_id = json.loads(record.value)["id"]
        seen.append(event_id)
        found.add(event_id)
    return seen


@contextlib.asynccontextmanager
async def serve(app: Any, port: int) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1:port inside this event loop."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), 60, "uvicorn to start")
    if task.done():
        task.result()
        raise RuntimeError("server exited during start-up")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def worker_port_range(band: tuple[int, int], worker: str, workers: int) -> tuple[int, int]:
    """The slice of ``band`` (both ends included) that pytest-xdist worker ``worker`` ("gw1")
    of ``workers`` draws its free ports from: equal slices, one per worker, never overlapping.

    Two workers drawing from one band could be handed the same port: "free now" reserves
    nothing, and a stack stopped between ``finops down`` and ``up`` keeps its ports unbound.
    """
    first, last = band
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else -1
    size = (last - first + 1) // workers if workers > 0 else 0
    if not 0 <= index < workers or size < 64:
        raise ValueError(
            f"no port range for worker {worker} of {workers} in {first}-{last}"
            " (at least 64 ports each)"
        )
    low = first + index * size
    return low, low + size - 1


def answer_json(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    """Answer the request ``handler`` serves with ``status`` and the JSON ``body``."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (http.server writes a line per request)."""

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on a free loopback port, serving with ``handler`` on threads of its
    own until the block ends; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def healthz_server() -> Iterator[str]:
    """A tiny HTTP server answering ``GET /healthz`` 200 (and 404 elsewhere), for a command
    that asks the services whether they run before it starts; yields its base URL."""

    class Healthy(QuietHandler):
        def do_GET(self) -> None:
            found = self.path == "/healthz"
            answer_json(self, 200 if found else 404, b'{"status":"ok"}' if found else b"{}")

    with loopback_server(Healthy) as url:
        yield url


class MetadataRefreshes:
    """For a fake consumer: aiokafka's client as :func:`finops.common.kafka.topic_partitions`
    uses it, asking for a topic by name (``refreshed`` counts the metadata requests)."""

    refreshed = 0

    @property
    def _client(self) -> Any:  # aiokafka's client: asking for a topic by name refreshes
        return SimpleNamespace(add_topic=lambda topic: None, force_metadata_update=self._refresh)

    async def _refresh(self) -> bool:
        self.refreshed += 1
        return True
