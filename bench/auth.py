"""Auth benchmarks; prints its figures.

1. In-process token verification per second on one core (signature + claims), and with the
   Redis blocklist check; baseline: the bare RS256 signature check (cryptography) of the same
   tokens.
2. `GET /api/users/me` requests per second for ONE uvicorn server process (token check,
   blocklist check in Redis, user read from PostgreSQL), driven by a load generator in a
   separate process over loopback keep-alive connections; p50/p99 latency. Baseline: the same
   load on `GET /healthz` of the same server.
3. Login p50 next to one bare argon2id hash at the same parameters.

Starts its own PostgreSQL, Redis and broker (finops.cli.stack.local_stack, infra only) on free
ports in a temporary folder, and stops everything at the end. Run: .venv/bin/python bench/auth.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from _figures import Measurement, at_least, record
from _open_loop import require_success
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from finops.auth.domain.passwords import PasswordHashing
from finops.cli.stack.infra import INFRA
from finops.cli.stack.local_stack import Stack, StackSettings
from finops.cli.stack.ports import free_port
from finops.common.auth import (
    SigningKey,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    blocklist_redis,
    generate_signing_key,
)
from finops.common.settings import CommonSettings

VERIFY_SECONDS = 3.0
LOAD_SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "10"))
LOAD_CONNECTIONS = 32
LOGINS = 40
QUICK_ARGS = ["--seconds", "1", "--verify-seconds", "0.5", "--logins", "5"]
QUICK_SECONDS = 18
PASSWORD = "bench passphrase " + uuid.uuid4().hex[:8]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---- 1. in-process verification ---------------------------------------------------------


def bare_signature_rate(key: SigningKey, tokens: list[str], seconds: float) -> float:
    """RS256 signature checks per second with cryptography alone: the floor under verify."""
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    public = private.public_key()
    parts = []
    for token in tokens:
        signed, _, signature = token.rpartition(".")
        parts.append((signed.encode(), base64.urlsafe_b64decode(signature + "==")))
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for signed, signature in parts:
            public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        count += len(parts)
    return count / (time.perf_counter() - started)


async def verification_rates(redis_url: str, seconds: float) -> dict[str, float]:
    key = generate_signing_key()
    settings = CommonSettings(redis_url=redis_url)
    signer = TokenSigner(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    tokens = [
        signer.issue(
            subject=str(uuid.uuid4()), username=f"u{i}", role="agent", scopes=["events:write"]
        ).token
        for i in range(200)
    ]
    redis = blocklist_redis(redis_url)
    verifier = TokenVerifier(settings, redis, StaticKeys.of(key))
    try:
        rates = {"bare_signature": bare_signature_rate(key, tokens, seconds)}
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for token in tokens:
                await verifier.verify_signature(token)
            count += len(tokens)
        rates["signature_and_claims"] = count / (time.perf_counter() - started)

        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for token in tokens[:50]:
                await verifier.verify(token)
            count += 50
        rates["with_blocklist_sequential"] = count / (time.perf_counter() - started)

        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            await asyncio.gather(*(verifier.verify(t) for t in tokens))
            count += len(tokens)
        rates["with_blocklist_200_concurrent"] = count / (time.perf_counter() - started)
        return rates
    finally:
        await verifier.aclose()
        await redis.aclose()


# ---- 2. load generator (runs in its own process) -----------------------------------------


async def _connection(host: str, port: int, request: bytes, until: float, record) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            record(status, time.perf_counter() - started)
    finally:
        writer.close()


async def _load(
    host: str, port: int, path: str, token: str, seconds: float, connections: int
) -> dict:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    measuring = False

    def record(status: int, seconds_taken: float) -> None:
        if measuring:
            latencies.append(seconds_taken)
            statuses[status] = statuses.get(status, 0) + 1

    warmup_until = time.perf_counter() + 1.0
    until = warmup_until + seconds
    tasks = [
        asyncio.create_task(_connection(host, port, request, until, record))
        for _ in range(connections)
    ]
    await asyncio.sleep(warmup_until - time.perf_counter())
    measuring = True
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return {
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": statuses,
        "requests": len(latencies),
    }


def loadgen_main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        _load("127.0.0.1", args.port, args.path, args.token, args.seconds, args.connections)
    )
    print(json.dumps(result))


# ---- 3. the server, login timings --------------------------------------------------------


def start_auth_server(stack: Stack, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        **stack.service_env(),
        "FINOPS_PORT": str(port),
        "FINOPS_DATA_DIR": str(data_dir),
        "FINOPS_LOG_LEVEL": "WARNING",
        # Many logins from one address in a row are this benchmark, not an attack.
        "FINOPS_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
    }
    log = (data_dir / "auth-bench.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "finops.auth"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"auth exited with {server.returncode}; see {log.name}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("auth did not become ready within 60 s")


def login_timings(url: str, logins: int) -> tuple[str, list[float]]:
    username = "bench" + uuid.uuid4().hex[:8]
    with httpx.Client(base_url=url, timeout=30) as http:
        created = http.post(
            "/api/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        created.raise_for_status()
        times, token = [], ""
        for _ in range(logins + 3):
            started = time.perf_counter()
            response = http.post("/api/auth/login", json={"login": username, "password": PASSWORD})
            times.append(time.perf_counter() - started)
            response.raise_for_status()
            token = response.json()["access_token"]
    return token, times[3:]  # the first few warm up pools and caches


def bare_hash_timings(logins: int) -> list[float]:
    hashing = PasswordHashing()
    times = []
    for i in range(logins):
        started = time.perf_counter()
        hashing.hash(f"{PASSWORD} {i}")
        times.append(time.perf_counter() - started)
    return times


def run_loadgen(port: int, path: str, token: str, seconds: float) -> dict:
    out = subprocess.run(
        [
            sys.executable, __file__, "--loadgen", "--port", str(port), "--token", token,
            "--path", path, "--seconds", str(seconds), "--connections", str(LOAD_CONNECTIONS),
        ],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="finops-bench-auth-") as tmp:
        root = Path(tmp)
        settings = StackSettings(
            data_dir=root / "stack",
            # every component on a free port: the storage's default one may be another
            # stack's (a quick run in the test suite failed at once on a taken port)
            **{f"{component}_port": free_port() for component in INFRA},
            postgres_fsync=False,
            database_url=None,
            redis_url=None,
            kafka_bootstrap=None,
        )
        stack = Stack(settings, infra_only=True)
        print(f"starting PostgreSQL, Redis and the broker in {root} ...", flush=True)
        stack.start()
        server = None
        try:
            print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
            rates = asyncio.run(verification_rates(stack.redis_url, args.verify_seconds))
            print("token verification, in-process, one core:")
            print(f"  signature + claims:               {rates['signature_and_claims']:>9,.0f} /s")
            print("    (target >= 10,000/s)")
            bare = rates["bare_signature"]
            print(f"  bare RS256 signature (baseline):  {bare:>9,.0f} /s")
            record(
                Measurement(
                    "token verifications, signature + claims, one core",
                    rates["signature_and_claims"],
                    "/s",
                ),
                Measurement("bare RS256 signature check", bare, "/s"),
                at_least(10_000),
            )
            sequential = rates["with_blocklist_sequential"]
            print(f"  + Redis blocklist, one at a time: {sequential:>9,.0f} /s")
            concurrent = rates["with_blocklist_200_concurrent"]
            print(f"  + Redis blocklist, 200 at once:   {concurrent:>9,.0f} /s")
            server, url = start_auth_server(stack, root)
            token, logins = login_timings(url, args.logins)
            hashes = bare_hash_timings(args.logins)
            login_p50, hash_p50 = statistics.median(logins), statistics.median(hashes)
            login_p99 = percentile(logins, 0.99)
            print(f"login (POST /api/auth/login over HTTP, {len(logins)} in a row):")
            print(f"  login p50 {login_p50 * 1000:.1f} ms, p99 {login_p99 * 1000:.1f} ms")
            print(f"  one bare argon2id hash (m=19456 KiB, t=2, p=1): p50 {hash_p50 * 1000:.1f} ms")
            print(f"  ratio login / hash: {login_p50 / hash_p50:.2f}")
            port = int(url.rsplit(":", 1)[1])
            load = run_loadgen(port, "/api/users/me", token, args.seconds)
            floor = run_loadgen(port, "/healthz", token, args.seconds)
            require_success("GET /api/users/me", load["statuses"])
            require_success("GET /healthz", floor["statuses"])
            print(
                f"GET /api/users/me, one uvicorn process, {LOAD_CONNECTIONS} keep-alive"
                f" connections, {args.seconds:.0f} s (load generator: another process, loopback):"
            )
            print(f"  {load['requests_per_second']:,.0f} requests/s (target >= 1,000/s)")
            print(f"  p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms")
            print(f"  {load['requests']:,} requests, statuses {load['statuses']}")
            print(f"  GET /healthz, same load (baseline): {floor['requests_per_second']:,.0f}/s")
            record(
                Measurement(
                    f"GET /api/users/me, one server process, {LOAD_CONNECTIONS} connections",
                    load["requests_per_second"],
                    "req/s",
                ),
                Measurement("GET /healthz, same load", floor["requests_per_second"], "req/s"),
                at_least(1_000),
                detail=f"p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms",
            )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="/api/users/me", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=LOAD_CONNECTIONS)
    parser.add_argument(
        "--seconds", type=float, default=LOAD_SECONDS, help="seconds of HTTP load per endpoint"
    )
    parser.add_argument(
        "--verify-seconds", type=float, default=VERIFY_SECONDS, help="seconds per in-process rate"
    )
    parser.add_argument("--logins", type=int, default=LOGINS, help="logins (and bare hashes)")
    arguments = parser.parse_args()
    if arguments.loadgen:
        loadgen_main(arguments)
    else:
        main(arguments)
