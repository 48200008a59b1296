from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from finops.common.auth import Principal, require_scope
from finops.common.auth.scopes import EVENTS_WRITE
from finops.ingest.adapters.publisher import EventPublisher
from finops.ingest.settings import IngestSettings


async def _publisher(request: Request) -> EventPublisher:
    return request.app.state.publisher  # type: ignore[no-any-return]


async def _settings(request: Request) -> IngestSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


Publisher = Annotated[EventPublisher, Depends(_publisher)]
Settings = Annotated[IngestSettings, Depends(_settings)]
EventWriter = Annotated[Principal, Depends(require_scope(EVENTS_WRITE))]
