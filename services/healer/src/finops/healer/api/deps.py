from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from finops.common.auth import Principal, require_scope
from finops.common.auth.scopes import OPTIMIZER_WRITE
from finops.healer.adapters.labels import LabelSync
from finops.healer.domain.classify import ErrorClassifier


async def _classifier(request: Request) -> ErrorClassifier:
    return request.app.state.classifier  # type: ignore[no-any-return]


async def _labels(request: Request) -> LabelSync:
    return request.app.state.labels  # type: ignore[no-any-return]


#: The instance's rules + taught text classifier: classify with ``classifier.classify(...)``.
Classifier = Annotated[ErrorClassifier, Depends(_classifier)]
Labels = Annotated[LabelSync, Depends(_labels)]
LabelWriter = Annotated[Principal, Depends(require_scope(OPTIMIZER_WRITE))]
