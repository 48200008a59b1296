"""Run one service's ASGI app under uvicorn with the platform's logging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn

from finops.common.logging import configure_logging
from finops.common.settings import CommonSettings


def serve(create_app: Callable[[Any], Any], settings: CommonSettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
