"""Canonical token usage, and normalisation of the providers' raw usage objects.

Canonical convention (the one every event, table and price in the platform uses)
--------------------------------------------------------------------------------
``input_tokens``
    ALL prompt-side tokens of the call: uncached + cache reads + cache writes.
    This is the OpenAI / Gemini convention and the one genai-prices uses. Anthropic and
    Bedrock report *uncached* input only, so their cache reads and writes are added in.
``cached_input_tokens``
    The part of ``input_tokens`` read from the prompt cache (billed at the cache-read rate).
``cache_write_tokens``
    The part of ``input_tokens`` written to the prompt cache (billed at the cache-write
    rate, Anthropic / Bedrock only today).
``cache_write_1h_tokens``
    Extension field: the part of ``cache_write_tokens`` written with Anthropic's 1-hour TTL
    (billed higher than the default 5-minute TTL). 0 when unknown or not applicable.
``output_tokens``
    ALL completion-side tokens, INCLUDING reasoning / thinking tokens (OpenAI convention;
    Gemini reports thoughts separately, so they are added in).
``reasoning_tokens``
    The part of ``output_tokens`` that was reasoning / thinking (billed as output).

Invariants, checked on validation: ``cached_input_tokens + cache_write_tokens <= input_tokens``,
``cache_write_1h_tokens <= cache_write_tokens`` and ``reasoning_tokens <= output_tokens``.
So ``uncached_input_tokens = input_tokens - cached_input_tokens - cache_write_tokens``.

Accepted raw shapes (detected by their keys; unknown keys inside a raw object are ignored
because providers add new ones all the time):

* OpenAI Chat Completions: ``prompt_tokens``, ``completion_tokens``,
  ``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``.
* OpenAI Responses API: ``input_tokens``, ``output_tokens``,
  ``input_tokens_details.cached_tokens``, ``output_tokens_details.reasoning_tokens``.
* Anthropic Messages: ``input_tokens`` (uncached), ``output_tokens``,
  ``cache_read_input_tokens``, ``cache_creation_input_tokens``,
  ``cache_creation.{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}``.
* Gemini ``usageMetadata`` and Bedrock Converse ``usage`` (camelCase), as a bonus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

TokenCount = Annotated[int, Field(strict=True, ge=0, le=1_000_000_000)]

CANONICAL_KEYS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
    }
)
_CANONICAL_OR_TOTAL = CANONICAL_KEYS | {"total_tokens"}
_OPENAI_CHAT_MARKERS = frozenset({"prompt_tokens", "completion_tokens"})
_OPENAI_RESPONSES_MARKERS = frozenset({"input_tokens_details", "output_tokens_details"})
_ANTHROPIC_MARKERS = frozenset(
    {
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_creation",
        "server_tool_use",
        "service_tier",
    }
)
_GEMINI_MARKERS = frozenset({"promptTokenCount", "candidatesTokenCount", "totalTokenCount"})
_BEDROCK_MARKERS = frozenset({"inputTokens", "outputTokens"})


class RawUsageError(ValueError):
    """A raw provider usage object that cannot be read."""


def _count(obj: Mapping[str, Any], key: str, *, path: str = "") -> int:
    """A non-negative int from a raw usage object; missing / null -> 0."""
    value = obj.get(key)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise RawUsageError(
            f"raw usage field {path}{key} must be a non-negative integer, got {value!r}"[:200]
        )
    return value


def _sub(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RawUsageError(f"raw usage field {key} must be an object")
    return value


def from_openai_chat(raw: Mapping[str, Any]) -> dict[str, int]:
    """OpenAI Chat Completions ``usage``: prompt_tokens already include cached tokens."""
    prompt = _sub(raw, "prompt_tokens_details")
    completion = _sub(raw, "completion_tokens_details")
    return {
        "input_tokens": _count(raw, "prompt_tokens"),
        "output_tokens": _count(raw, "completion_tokens"),
        "cached_input_tokens": _count(prompt, "cached_tokens", path="prompt_tokens_details."),
        "cache_write_tokens": _count(prompt, "cache_write_tokens", path="prompt_tokens_details."),
        "reasoning_tokens": _count(
            completion, "reasoning_tokens", path="completion_tokens_details."
        ),
    }


def from_openai_responses(raw: Mapping[str, Any]) -> dict[str, int]:
    """OpenAI Responses API ``usage``: input_tokens already include cached tokens."""
    inp = _sub(raw, "input_tokens_details")
    out = _sub(raw, "output_tokens_details")
    return {
        "input_tokens": _count(raw, "input_tokens"),
        "output_tokens": _count(raw, "output_tokens"),
        "cached_input_tokens": _count(inp, "cached_tokens", path="input_tokens_details."),
        "cache_write_tokens": _count(inp, "cache_write_tokens", path="input_tokens_details."),
        "reasoning_tokens": _count(out, "reasoning_tokens", path="output_tokens_details."),
    }


def from_anthropic(raw: Mapping[str, Any]) -> dict[str, int]:
    """Anthropic Messages ``usage``: input_tokens EXCLUDE cache reads and writes."""
    uncached = _count(raw, "input_tokens")
    cache_read = _count(raw, "cache_read_input_tokens")
    creation = _sub(raw, "cache_creation")
    w5m = _count(creation, "ephemeral_5m_input_tokens", path="cache_creation.")
    w1h = _count(creation, "ephemeral_1h_input_tokens", path="cache_creation.")
    cache_write = raw.get("cache_creation_input_tokens")
    cache_write = w5m + w1h if cache_write is None else _count(raw, "cache_creation_input_tokens")
    thinking = _count(_sub(raw, "output_tokens_details"), "thinking_tokens")
    return {
        "input_tokens": uncached + cache_read + cache_write,
        "output_tokens": _count(raw, "output_tokens"),
        "cached_input_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "cache_write_1h_tokens": w1h,
        "reasoning_tokens": thinking,
    }


def from_gemini(raw: Mapping[str, Any]) -> dict[str, int]:
    """Gemini ``usageMetadata``: candidates exclude thoughts; tool-use prompt is input."""
    thoughts = _count(raw, "thoughtsTokenCount")
    return {
        "input_tokens": _count(raw, "promptTokenCount") + _count(raw, "toolUsePromptTokenCount"),
        "output_tokens": _count(raw, "candidatesTokenCount") + thoughts,
        "cached_input_tokens": _count(raw, "cachedContentTokenCount"),
        "reasoning_tokens": thoughts,
    }


def from_bedrock(raw: Mapping[str, Any]) -> dict[str, int]:
    """Bedrock Converse ``usage``: inputTokens EXCLUDE cache reads and writes."""
    read = _count(raw, "cacheReadInputTokens")
    write = _count(raw, "cacheWriteInputTokens")
    return {
        "input_tokens": _count(raw, "inputTokens") + read + write,
        "output_tokens": _count(raw, "outputTokens"),
        "cached_input_tokens": read,
        "cache_write_tokens": write,
    }


def detect_format(raw: Mapping[str, Any]) -> str:
    """Which shape ``raw`` is: ``canonical``, ``openai_chat``, ``openai_responses``,
    ``anthropic``, ``gemini`` or ``bedrock``."""
    keys = raw.keys()
    if keys <= _CANONICAL_OR_TOTAL:
        # Also an Anthropic / Responses body without any cache or details fields: same numbers.
        return "canonical"
    if not _OPENAI_CHAT_MARKERS.isdisjoint(keys):
        return "openai_chat"
    if not _ANTHROPIC_MARKERS.isdisjoint(keys):
        return "anthropic"
    if not _OPENAI_RESPONSES_MARKERS.isdisjoint(keys):
        return "openai_responses"
    if not _GEMINI_MARKERS.isdisjoint(keys):
        return "gemini"
    if not _BEDROCK_MARKERS.isdisjoint(keys):
        return "bedrock"
    return "canonical"  # unknown keys: let the strict model report them as extra fields


_CONVERTERS = {
    "openai_chat": from_openai_chat,
    "openai_responses": from_openai_responses,
    "anthropic": from_anthropic,
    "gemini": from_gemini,
    "bedrock": from_bedrock,
}


def normalize_usage(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Any accepted usage shape -> a dict of canonical fields (not yet validated)."""
    fmt = detect_format(raw)
    if fmt == "canonical":
        return {k: v for k, v in raw.items() if k != "total_tokens"}
    if not CANONICAL_KEYS.isdisjoint(raw.keys() - {"input_tokens", "output_tokens"}):
        raise RawUsageError(f"usage mixes canonical fields with a raw {fmt} usage object")
    return _CONVERTERS[fmt](raw)


class Usage(BaseModel):
    """Token usage of one LLM call in the canonical convention (see module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: TokenCount = Field(
        description="All input tokens, INCLUDING cache reads and cache writes."
    )
    output_tokens: TokenCount = Field(
        description="All output tokens, INCLUDING reasoning / thinking tokens."
    )
    cached_input_tokens: TokenCount = Field(
        default=0, description="Part of input_tokens read from cache."
    )
    cache_write_tokens: TokenCount = Field(
        default=0, description="Part of input_tokens written to the prompt cache."
    )
    cache_write_1h_tokens: TokenCount = Field(
        default=0, description="Part of cache_write_tokens written with a 1-hour TTL (Anthropic)."
    )
    reasoning_tokens: TokenCount = Field(
        default=0, description="Part of output_tokens spent reasoning."
    )

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if type(data) is dict:
            if data.keys() <= CANONICAL_KEYS:  # fast path: already canonical
                return data
            return normalize_usage(data)
        if isinstance(data, Mapping):
            return normalize_usage(data)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Usage:
        if self.cached_input_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "cached_input_tokens + cache_write_tokens must not exceed input_tokens "
                "(input_tokens counts ALL input tokens, including cached ones)"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError("cache_write_1h_tokens must not exceed cache_write_tokens")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                "reasoning_tokens must not exceed output_tokens "
                "(output_tokens counts ALL output tokens, including reasoning)"
            )
        return self

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cached_input_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# ---------------------------------------------------------------- JSON Schema of accepted input
def _int(description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": 0}
    if description:
        out["description"] = description
    return out


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": ["object", "null"], "properties": props}


RAW_USAGE_JSON_SCHEMAS: list[dict[str, Any]] = [
    {
        "title": "OpenAIChatUsage",
        "description": "OpenAI Chat Completions `usage` (prompt_tokens include cached tokens).",
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens"],
        "properties": {
            "prompt_tokens": _int(),
            "completion_tokens": _int(),
            "total_tokens": _int(),
            "prompt_tokens_details": _obj(cached_tokens=_int(), audio_tokens=_int()),
            "completion_tokens_details": _obj(reasoning_tokens=_int()),
        },
    },
    {
        "title": "OpenAIResponsesUsage",
        "description": "OpenAI Responses API `usage` (input_tokens include cached tokens).",
        "type": "object",
        "required": ["input_tokens", "output_tokens", "input_tokens_details"],
        "properties": {
            "input_tokens": _int(),
            "output_tokens": _int(),
            "total_tokens": _int(),
            "input_tokens_details": _obj(cached_tokens=_int()),
            "output_tokens_details": _obj(reasoning_tokens=_int()),
        },
    },
    {
        "title": "AnthropicUsage",
        "description": "Anthropic Messages `usage` (input_tokens EXCLUDE cache reads/writes; "
        "they are added in on normalisation).",
        "type": "object",
        "required": ["input_tokens", "output_tokens", "cache_read_input_tokens"],
        "properties": {
            "input_tokens": _int("uncached input tokens"),
            "output_tokens": _int(),
            "cache_read_input_tokens": _int(),
            "cache_creation_input_tokens": _int(),
            "cache_creation": _obj(
                ephemeral_5m_input_tokens=_int(), ephemeral_1h_input_tokens=_int()
            ),
        },
    },
]


class _AcceptsRawUsage:
    """JSON Schema of a usage field: the canonical Usage OR a raw provider usage object."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        canonical = handler(core_schema)
        return {
            "anyOf": [canonical, *RAW_USAGE_JSON_SCHEMAS],
            "description": "Canonical usage, or the provider's raw usage object "
            "(OpenAI chat / responses, Anthropic; also Gemini usageMetadata and Bedrock "
            "Converse usage), normalised on input.",
        }


UsageInput = Annotated[Usage, _AcceptsRawUsage()]
"""Field type for event usage: validates to :class:`Usage`, documents the raw shapes too."""
