"""Run one service's ASGI app under uvicorn with the platform's logging."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn

from finops.common.datastores import DatabaseUnreachable
from finops.common.logging import configure_logging
from finops.common.settings import (
    CommonSettings,
    known_settings,
    unknown_settings,
    warn_about_unknown_settings,
)
from finops.common.settings_errors import SETTINGS_ERRORS, SETTINGS_REFUSED, settings_error_line

SettingsT = TypeVar("SettingsT", bound=CommonSettings)


def uvicorn_options(settings: CommonSettings) -> dict[str, Any]:
    """uvicorn's options for a service.

    uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 unless told otherwise, so any local
    client could claim any address (and, say, a fresh login-throttle budget with each one).
    Here forwarded headers count only from the proxies listed in ``FINOPS_TRUSTED_PROXIES``:
    none by default.
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
    }


def settings_or_exit(read_settings: Callable[[], SettingsT]) -> SettingsT:
    """The settings ``read_settings`` reads; a malformed or refused setting ends the process
    with one line naming the variable (exit status 2), not pydantic's dump. For a service
    (:func:`serve`) and the image's other commands (``create_topics``).

    A ``FINOPS_*`` variable no part of the platform reads (a misspelt one) is printed as a
    ``warning:`` line above the error: it may be the cause (the misspelt name of a required
    setting)."""
    try:
        return read_settings()
    except SETTINGS_ERRORS as exc:
        for line in unknown_settings(os.environ, known_settings()):
            print(f"warning: {line}", file=sys.stderr)
        print(f"error: {settings_error_line(exc)}", file=sys.stderr)
        sys.exit(SETTINGS_REFUSED)


def serve(create_app: Callable[[Any], Any], read_settings: Callable[[], CommonSettings]) -> None:
    """Read the service's settings and run it; a malformed or refused setting ends the process
    with one line naming the variable (exit status 2), not pydantic's dump
    (:func:`settings_or_exit`).

    A ``FINOPS_*`` variable no part of the platform reads (a misspelt one) is logged as a
    warning naming the closest setting; when the settings are refused, it is printed above
    the error (it may be the cause: the misspelt name of a required setting)."""
    settings = settings_or_exit(read_settings)
    configure_logging(settings.service_name, settings.log_level)
    warn_about_unknown_settings()
    uvicorn.run(OneLineStartupFailure(create_app(settings)), **uvicorn_options(settings))


#: what stops a service's start-up for a reason of the deployment, which its message names
DEPLOYMENT_FAILURES = (DatabaseUnreachable,)


class OneLineStartupFailure:
    """An ASGI app that reports a start-up stopped by :data:`DEPLOYMENT_FAILURES` (a database
    that does not answer: :class:`~finops.common.datastores.DatabaseUnreachable`) as one line,
    ``<code>: <message>``, instead of the traceback Starlette hands uvicorn to log.

    Such an error is the deployer's to fix and says how; any other failure at start-up (another
    ``FinopsError`` too: a restore that finds no row is a bug) keeps its traceback. Either way
    uvicorn then exits with status 3.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Any] = []

        async def hold_startup_failure(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)  # sent below, once the error it reports is known
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_startup_failure)
        except DEPLOYMENT_FAILURES as exc:
            if held:
                line = " ".join(f"{exc.code}: {exc.message}".split())
                await send({"type": "lifespan.startup.failed", "message": line})
            raise
        except BaseException:
            if held:
                await send(held[0])
            raise
