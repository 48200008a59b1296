"""What every service's lifespan opens first: PostgreSQL, Redis and the token verifier.

Written once here so each ``app.py`` keeps only what is its own (intakes, producers, chores).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from finops.common.auth import TokenVerifier, install_verifier
from finops.common.auth.key_sources import KeySource
from finops.common.datastores import postgres_pool, redis_client
from finops.common.http import Lifespan
from finops.common.settings import CommonSettings

log = logging.getLogger(__name__)


async def finish(task: asyncio.Task[Any], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for a loop that was told to stop, then cancel it.

    Never raises for the loop's sake (its failure is logged), so whatever a lifespan stops
    after it (its consumers, its producer) is always stopped: a loop stuck in a broker call
    must not leave a consumer in its group and hang the shutdown.
    """
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("%s did not stop within %.0f s; cancelling it", task.get_name(), timeout)
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        return
    if not task.cancelled() and task.exception() is not None and task not in _REPORTED:
        log.error("%s failed", task.get_name(), exc_info=task.exception())


#: loops whose failure :func:`end_process_if_failed` has logged already (:func:`finish` does
#: not log it twice)
_REPORTED: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def end_process_if_failed(
    task: asyncio.Task[Any],
    what: str,
    stopping: asyncio.Event,
    *,
    enabled: bool,
    terminate: Callable[[], None] | None = None,
) -> None:
    """When ``task`` (a service's background loop, ``what`` in the log) ends with an error
    while ``stopping`` is not set, log one line naming the error and ``terminate`` the
    process (default: SIGTERM to itself: the service shuts down as on any stop, and
    `finops up` or Kubernetes starts it again). ``enabled`` off
    (``FINOPS_EXIT_ON_LOOP_FAILURE=false``): only the log.

    A loop that died of something its own retries do not cover (a column missing after a
    schema downgrade, say) left the process up with the loop gone for good: /readyz said so,
    but nothing restarted a process that was still alive.

    Examples
    --------
    >>> async def fails() -> None:
    ...     raise RuntimeError("column a.announced_at does not exist")
    >>> async def demo() -> list[str]:
    ...     ended: list[str] = []
    ...     task = asyncio.create_task(fails())
    ...     end_process_if_failed(
    ...         task, "the event intake", asyncio.Event(), enabled=True,
    ...         terminate=lambda: ended.append("terminated"),
    ...     )
    ...     await asyncio.wait({task})
    ...     await asyncio.sleep(0)  # the done-callback runs on the next turn of the loop
    ...     return ended
    >>> asyncio.run(demo())
    ['terminated']
    """

    def ended(done: asyncio.Task[Any]) -> None:
        if done.cancelled() or done.exception() is None or stopping.is_set():
            return
        error = done.exception()
        _REPORTED.add(done)
        if not enabled:
            log.error("%s failed; the process stays up without it", what, exc_info=error)
            return
        log.critical(
            "%s failed (%s: %s); ending the process so that it is started again",
            what,
            type(error).__name__,
            " ".join(str(error).split()),
            exc_info=error,
        )
        (terminate or _terminate_self)()

    task.add_done_callback(ended)


async def run_together(*loops: Coroutine[Any, Any, None]) -> None:
    """Run a stage's loops side by side until all return; when one fails, cancel the others and
    raise its error.

    ``asyncio.gather`` would raise the failure but leave the other loops running unowned (a
    forwarder still forwarding for an analysis that died), and the service half alive.
    """
    first_failure: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            for loop in loops:
                group.create_task(loop)
    except BaseExceptionGroup as failed:
        first_failure = failed.exceptions[0]
    if first_failure is not None:
        # one loop's failure, as its own exception: the log and the caller see what broke.
        # Raised outside the except block, so that it keeps its own context: raising it there
        # would make the group its context, and is_dependency_failure() reads the context of
        # asyncpg's "connection is closed" error to tell an outage from a bug.
        raise first_failure


@asynccontextmanager
async def shared_resources(
    app: FastAPI,
    settings: CommonSettings,
    *,
    postgres_pool_size: int | None = None,
    verifier: TokenVerifier | None = None,
    keys: KeySource | None = None,
) -> AsyncIterator[None]:
    """Open ``app.state.db`` (a pool of ``postgres_pool_size``; none when it is None) and
    ``app.state.redis``, install the token verifier, and close all three in reverse order.

    ``verifier`` replaces the one built on this Redis client (tests pass one that trusts
    their keys); ``keys`` are what the built one trusts (default: auth's JWKS).
    """
    async with AsyncExitStack() as opened:
        if postgres_pool_size is not None:
            app.state.db = await postgres_pool(settings, max_size=postgres_pool_size)
            opened.push_async_callback(app.state.db.close)
        app.state.redis = redis_client(settings)
        opened.push_async_callback(app.state.redis.aclose)
        verifier = verifier or TokenVerifier(settings, app.state.redis, keys)
        opened.push_async_callback(verifier.aclose)
        install_verifier(app, verifier)
        yield


def with_shared_resources(
    own: Lifespan,
    settings: CommonSettings,
    *,
    postgres_pool_size: int | None = None,
    verifier: TokenVerifier | None = None,
) -> Lifespan:
    """A lifespan that opens :func:`shared_resources`, then the service's ``own`` resources
    (which may use ``app.state.db`` and ``app.state.redis``), and closes them the other way."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            shared_resources(
                app, settings, postgres_pool_size=postgres_pool_size, verifier=verifier
            ),
            own(app),
        ):
            yield

    return lifespan
