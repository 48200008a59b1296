"""``POST /api/healing/labels``: operators teach the error classifier.

A label says "this message means that kind". It teaches the learned text classifier, which
decides the messages no rule of the table knows (see docs/healer.md, "Error taxonomy"). Every
label is stored (who taught what, when) and learned by every healer instance.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from finops.common.api_errors import BEARER, JSON_BODY, ApiError, responses
from finops.common.errors import ValidationFailed
from finops.common.provider_errors.taxonomy import ErrorKind, ProviderError
from finops.healer.adapters.labels import NewLabel
from finops.healer.api.deps import Classifier, Labels, LabelWriter
from finops.healer.api.schemas import LabelsOut

router = APIRouter(default_response_class=JSONResponse)  # json.dumps bytes: see response_body

MAX_LABELS = 100
MAX_LABEL_MESSAGE = 2000
MAX_PROVIDER = 64
#: Every kind but ``unknown``: teaching "this means nothing" would only hide the agent's hint.
TEACHABLE_KINDS = tuple(k.value for k in ErrorKind if k is not ErrorKind.UNKNOWN)
FIELDS = {"message", "kind", "provider", "status"}

LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message", "kind"],
    "properties": {
        "message": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_MESSAGE},
        "kind": {"type": "string", "enum": list(TEACHABLE_KINDS)},
        "provider": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_PROVIDER},
        "status": {"type": ["integer", "null"], "minimum": 100, "maximum": 599},
    },
}
BODY_SCHEMA: dict[str, Any] = {
    "oneOf": [
        LABEL_SCHEMA,
        {"type": "array", "minItems": 1, "maxItems": MAX_LABELS, "items": LABEL_SCHEMA},
    ]
}

ERRORS = (
    *BEARER,
    *JSON_BODY,
    ApiError(422, "validation_error", "there is no body"),
    ApiError(422, "unknown_kind", "a label's kind is not a kind, or is `unknown` (not teachable)"),
    ApiError(422, "empty_message", "a label's message is missing, not text or blank"),
    ApiError(422, "message_too_long", f"a label's message is over {MAX_LABEL_MESSAGE} characters"),
    ApiError(422, "invalid_text", "a label's message holds a NUL character"),
    ApiError(422, "invalid_provider", "a label's provider is not text of 1..64 characters"),
    ApiError(422, "invalid_status", "a label's status is not an integer 100..599"),
    ApiError(
        422, "unknown_field", "a label has a field other than message, kind, provider, status"
    ),
    ApiError(422, "invalid_label", "a label is not a JSON object"),
    ApiError(422, "no_labels", "the list of labels is empty"),
    ApiError(422, "too_many_labels", f"over {MAX_LABELS} labels in one request"),
    ApiError(422, "invalid_labels", "several of the above; `details` lists each (index, field)"),
    ApiError(
        503,
        "dependency_unavailable",
        "PostgreSQL did not store or return the labels in time; see `Retry-After`",
    ),
)


class LabelRejected(ValidationFailed):
    """One or more labels are not acceptable; ``details`` names each (index, field, code)."""

    message = "labels rejected"

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        codes = {p["code"] for p in problems}
        self.code = codes.pop() if len(codes) == 1 else "invalid_labels"
        first = problems[0]["message"]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more, details=problems)


def _problem(index: int | None, field: str, code: str, message: str) -> dict[str, Any]:
    return {"index": index, "field": field, "code": code, "message": message}


def _check(index: int, item: Any) -> tuple[NewLabel | None, list[dict[str, Any]]]:
    if not isinstance(item, dict):
        return None, [_problem(index, "", "invalid_label", "a label must be a JSON object")]
    problems = [
        _problem(index, name, "unknown_field", f"unknown field {name!r}")
        for name in sorted(set(item) - FIELDS)
    ]
    message, kind = item.get("message"), item.get("kind")
    provider, status = item.get("provider"), item.get("status")
    if not isinstance(message, str) or not message.strip():
        problems.append(
            _problem(index, "message", "empty_message", "message must be non-empty text")
        )
    elif "\x00" in message:
        problems.append(
            _problem(index, "message", "invalid_text", "message must not contain NUL characters")
        )
    elif len(message) > MAX_LABEL_MESSAGE:
        problems.append(
            _problem(
                index,
                "message",
                "message_too_long",
                f"message must be at most {MAX_LABEL_MESSAGE} characters, got {len(message)}",
            )
        )
    if kind not in TEACHABLE_KINDS:
        problems.append(
            _problem(
                index,
                "kind",
                "unknown_kind",
                f"kind must be one of {', '.join(TEACHABLE_KINDS)}; got {kind!r}",
            )
        )
    if provider is not None and (
        not isinstance(provider, str)
        or not 1 <= len(provider) <= MAX_PROVIDER
        or "\x00" in provider
    ):
        problems.append(
            _problem(index, "provider", "invalid_provider", "provider must be 1..64 characters")
        )
    if status is not None and (type(status) is not int or not 100 <= status <= 599):
        problems.append(
            _problem(index, "status", "invalid_status", "status must be an integer 100..599")
        )
    if problems or not isinstance(message, str) or not isinstance(kind, str):
        return None, problems
    return NewLabel(message.strip(), ErrorKind(kind), provider, status), []


def parse_labels(body: Any) -> list[NewLabel]:
    """One label or a list of at most :data:`MAX_LABELS`; every problem is reported."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise LabelRejected([_problem(None, "", "no_labels", "the list of labels is empty")])
    if len(items) > MAX_LABELS:
        raise LabelRejected(
            [_problem(None, "", "too_many_labels", f"at most {MAX_LABELS} labels per request")]
        )
    labels, problems = [], []
    for index, item in enumerate(items):
        label, found = _check(index, item)
        problems += found
        if label is not None:
            labels.append(label)
    if problems:
        raise LabelRejected(problems)
    return labels


@router.post(
    "/api/healing/labels",
    tags=["healing"],
    status_code=201,
    summary="Teach the error classifier what a message means",
    description=(
        "Scope `optimizer:write`. Body: one label `{message, kind, provider?, status?}` or a "
        f"list of at most {MAX_LABELS}. Each is stored and learned by every healer instance; it "
        "decides errors that no rule of the table knows. `decided_by_rule` names the rule that "
        "already classifies the labelled error (then the label changes nothing for it)."
    ),
    response_model=LabelsOut,
    responses=responses(ERRORS),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BODY_SCHEMA}}}
    },
)
async def teach(
    body: Annotated[Any, Body()],
    principal: LabelWriter,
    labels: Labels,
    classifier: Classifier,
) -> dict[str, Any]:
    new = parse_labels(body)
    ids = await labels.add(new, created_by=principal.username)
    return {
        "labels": [
            {
                "id": label_id,
                "kind": label.kind.value,
                "decided_by_rule": classifier.rule_for(
                    ProviderError(
                        message=label.message, status=label.status, provider=label.provider
                    )
                ),
            }
            for label_id, label in zip(ids, new, strict=True)
        ],
        "labels_learned": classifier.text.labels_learned,
    }
