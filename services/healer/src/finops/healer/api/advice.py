"""``POST /api/healing/advice``: what to do about one failed call.

The body is the ``data`` of an ``agent.error`` event (``agent_id`` defaults to the caller, and
another agent's needs ``events:write:any``, as at ingest; ``error.kind`` is an optional hint).
The healer classifies the error, chooses a safe remedy (the learned effectiveness picks among
the candidates), publishes the advice on ``finops.healing.v1`` (an abort also on
``finops.alerts.v1``) and answers it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from finops.common.api_errors import AGENT_MISMATCH, BEARER, JSON_BODY, ApiError, responses
from finops.common.errors import DependencyUnavailable
from finops.common.events.schemas import ErrorInfo, Id128, ModelName, Name64, RequestInfo
from finops.common.events.schemas import Remedy as RemedyTag
from finops.common.events.schemas.name_text import CONTROL_TYPE, control_fields
from finops.common.name_characters import name_refusal
from finops.common.provider_errors.payload import from_error_info
from finops.common.request_body import Count, RequestBody, holds_unstorable_text
from finops.healer.api.deps import Advisor, Classifier, HealingLog, HealingReader
from finops.healer.api.schemas import AdviceOut
from finops.healer.domain.remedies import FailedCall

router = APIRouter(default_response_class=JSONResponse)  # json.dumps bytes: see response_body
#: How long the advice may wait for room in the producer's buffer before a 503. The record is
#: queued, not awaited: its delivery is counted (finops_healer_published_total) and a failed
#: one logged, while the agent has its answer at once.
PUBLISH_TIMEOUT_S = 2.0

ERRORS = (
    *BEARER,
    AGENT_MISMATCH,
    *JSON_BODY,
    ApiError(
        422,
        "validation_error",
        "the body is not the `data` of an `agent.error` event (a field missing, of the wrong "
        "type or unknown, or a name holding a control character, a line separator or a format "
        "character such as a bidi override or a zero-width space, as ingest refuses it: type "
        "`control_character`, its code point in the message, and a NUL anywhere "
        "`invalid_text`; `details` names each)",
    ),
    ApiError(
        503,
        "dependency_unavailable",
        "the producer's buffer stayed full (the broker has not been taking records) for 2 s, "
        "so the advice record could not be queued (nothing was advised); see `Retry-After`",
    ),
)


class CallError(ErrorInfo):
    """The failed call's ``error``, as in an ``agent.error`` event. Its own name in the OpenAPI
    document: the error answers' ``ErrorInfo`` is another model, and two models of one name
    became ``ErrorInfo-Input`` and ``ErrorInfo-Output`` there."""


class AdviceIn(RequestBody):
    """The ``data`` of an ``agent.error`` event; ``agent_id`` defaults to the caller."""

    agent_id: Id128 | None = None
    team: Id128 | None = None
    project: Id128 | None = None
    task_type: Name64
    provider: Name64
    model: ModelName
    error: CallError
    request: RequestInfo | None = None
    attempt: Count = Field(1, ge=1, le=1000)
    remedy: RemedyTag | None = Field(
        None, description="The advice the agent applied before this failure, if any."
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_control_characters_in_names(cls, data: Any) -> Any:
        """A name holding a control or format character is refused as ingest refuses it in the
        event (type ``control_character``, the field named: ``task_type``, ``error.type``, and
        the character's code point). A body
        holding a NUL is left to RequestBody's check (this one runs first), which refuses it as
        ingest does: type ``invalid_text``."""
        if holds_unstorable_text(data):
            return data
        names = control_fields({"data": data}) if isinstance(data, dict) else []
        if names:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            CONTROL_TYPE, "{refusal}", {"refusal": name_refusal(char)}
                        ),
                        loc=tuple(name.split(".")[1:]),
                        input=data,
                    )
                    for name, char in names
                ],
            )
        return data


@router.post(
    "/api/healing/advice",
    tags=["healing"],
    summary="What to do about a failed LLM call",
    description=(
        "Scope `healing:read`. Body: the `data` of an `agent.error` event; `agent_id` defaults "
        "to the caller, and another agent's (403 `agent_mismatch`) needs `events:write:any`, "
        "as for its events at ingest. Answer: "
        "`{advice_id, kind, retryable, remedy: {action, delay_ms, model, provider, "
        "max_input_tokens, params}, reason, breaker}`; `action` is one of retry, wait, "
        "fallback, trim, repair, abort. For retry/wait, `delay_ms` is at least the wait the "
        "provider stated. Every advice is also published on `finops.healing.v1`."
    ),
    response_model=AdviceOut,
    responses=responses(ERRORS),
)
async def advise(
    body: AdviceIn,
    principal: HealingReader,
    classifier: Classifier,
    advisor: Advisor,
    healing_log: HealingLog,
) -> dict[str, Any]:
    agent_id = body.agent_id or principal.username
    principal.require_speaks_for(agent_id)  # advice in another's name goes on its record
    agent_id = principal.agent_name(agent_id)  # its user id: recorded under its username
    reported = from_error_info(body.error, body.provider)
    # now: a Retry-After given as a date, with no date header to read it against
    verdict = classifier.classify(reported.error, reported.hint, now=datetime.now(UTC))
    request = body.request
    call = FailedCall(
        body.provider,
        body.model,
        body.attempt,
        request.input_tokens if request else None,
        request.max_tokens if request else None,
    )
    advice = advisor.advise(
        str(uuid.uuid4()),
        agent_id,
        verdict,
        call,
        follows=body.remedy.advice_id if body.remedy else None,
    )
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await healing_log.publish(advice, body.task_type)
    except (TimeoutError, KafkaError) as exc:
        raise DependencyUnavailable(
            "the broker did not take the advice record", retry_after_seconds=1
        ) from exc
    return advice.to_answer()
