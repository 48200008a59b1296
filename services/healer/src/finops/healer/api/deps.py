from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from finops.common.auth import Principal, require_scope
from finops.common.auth.scopes import HEALING_READ, OPTIMIZER_WRITE, STATS_READ
from finops.healer.adapters.circuits import CircuitsView
from finops.healer.adapters.effectiveness import OutcomeIntake
from finops.healer.adapters.healing_log import HealingLog as HealingLogAdapter
from finops.healer.adapters.labels import LabelSync
from finops.healer.domain.advice import Advisor as AdvisorDomain
from finops.healer.domain.classify import ErrorClassifier


async def _classifier(request: Request) -> ErrorClassifier:
    return request.app.state.classifier  # type: ignore[no-any-return]


async def _labels(request: Request) -> LabelSync:
    return request.app.state.labels  # type: ignore[no-any-return]


async def _advisor(request: Request) -> AdvisorDomain:
    return request.app.state.advisor  # type: ignore[no-any-return]


async def _healing_log(request: Request) -> HealingLogAdapter:
    return request.app.state.healing_log  # type: ignore[no-any-return]


async def _outcomes(request: Request) -> OutcomeIntake:
    return request.app.state.outcomes  # type: ignore[no-any-return]


async def _circuits(request: Request) -> CircuitsView:
    return request.app.state.circuits  # type: ignore[no-any-return]


#: The instance's rules + taught text classifier: classify with ``classifier.classify(...)``.
Classifier = Annotated[ErrorClassifier, Depends(_classifier)]
Labels = Annotated[LabelSync, Depends(_labels)]
LabelWriter = Annotated[Principal, Depends(require_scope(OPTIMIZER_WRITE))]
Advisor = Annotated[AdvisorDomain, Depends(_advisor)]
HealingLog = Annotated[HealingLogAdapter, Depends(_healing_log)]
Outcomes = Annotated[OutcomeIntake, Depends(_outcomes)]
#: every breaker's latest published state (``finops.circuits.v1``)
Circuits = Annotated[CircuitsView, Depends(_circuits)]
#: ``healing:read``: ask for advice, list the circuit breakers
HealingReader = Annotated[Principal, Depends(require_scope(HEALING_READ))]
StatsReader = Annotated[Principal, Depends(require_scope(STATS_READ))]
