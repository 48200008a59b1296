"""Cost of an LLM call from its canonical usage, with the ``genai-prices`` price tables.

Semantics (checked against genai-prices' source and its own usage extractors):

* genai-prices' ``input_tokens`` is the TOTAL input, including cache reads and writes
  (its Anthropic extractor adds ``cache_read_input_tokens`` and ``cache_creation_input_tokens``
  into ``input_tokens``); ``cache_read_tokens`` / ``cache_write_tokens`` /
  ``cache_write_1h_tokens`` are subsets of it, priced at their own rates, and the remainder
  is priced at the input rate. Same for ``output_reasoning_tokens`` inside ``output_tokens``
  (priced as output unless a model has a separate reasoning rate). That is exactly our
  canonical :class:`~finops.common.events.usage.Usage`, so the mapping is 1:1
  (:func:`to_genai_usage`).
* ``genai_prices.calc_price`` costs ~125 us per call (it re-resolves and re-validates the price
  units on every call). :func:`price_call` does the same arithmetic (same Decimal operations,
  same leaf decomposition, same tier thresholds, same time-conditional price selection) with
  the per-model unit plan compiled once and cached, and an LRU cache on (provider, model) ->
  model lookup; if the plan cannot be compiled it falls back to genai-prices' own
  ``ModelInfo.calc_price``. Tests assert both give identical numbers.
* Unknown provider / model, or usage genai-prices rejects -> ``cost_source="unpriced"``;
  :func:`price_call` never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import genai_prices
from genai_prices import data_snapshot
from genai_prices.data_snapshot import find_provider_by_id
from pydantic import ValidationError

from finops.common.events.schemas import Event, LlmCallEvent
from finops.common.events.usage import Usage

try:  # private helpers, used only to compile the fast path; the fallback is public API
    from genai_prices.types import TieredPrices, _collect_resolved_model_prices
    from genai_prices.units import _get_registry
    from genai_prices.validation import validate_priced_units

    _FAST_PATH = True
except ImportError:  # pragma: no cover - a future genai-prices moved them
    _FAST_PATH = False

log = logging.getLogger(__name__)

GENAI_PRICES_VERSION: str = genai_prices.__version__

#: common provider names -> genai-prices provider ids (only where they differ)
PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "google-gemini": "google",
    "google_genai": "google",
    "google-genai": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "vertex-ai": "google",
    "vertexai": "google",
    "google-vertex": "google",
    "mistral": "mistral",
    "mistralai": "mistral",
    "mistral-ai": "mistral",
    "groq": "groq",
    "together": "together",
    "together_ai": "together",
    "together-ai": "together",
    "togetherai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
    "fireworksai": "fireworks",
    "bedrock": "aws",
    "aws": "aws",
    "aws-bedrock": "aws",
    "aws_bedrock": "aws",
    "amazon-bedrock": "aws",
    "amazon_bedrock": "aws",
    "azure": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "azure_ai": "azure",
    "azure-ai": "azure",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "x.ai": "x-ai",
    "grok": "x-ai",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
    "zai": "zai",
    "z.ai": "zai",
}


def genai_provider_id(provider: str) -> str:
    """Our provider name -> genai-prices provider id (unknown names pass through, lowercased)."""
    p = provider.strip().lower()
    return PROVIDER_ALIASES.get(p, p)


@dataclass(frozen=True, slots=True)
class PriceResult:
    total_usd: float | None
    cost_source: Literal["computed", "unpriced"]
    price_version: str | None
    input_usd: float | None = None
    output_usd: float | None = None
    provider_id: str | None = None
    """genai-prices provider id that priced the call."""
    model_id: str | None = None
    """genai-prices model id the model name matched."""
    reason: str | None = None
    """Why the call is unpriced: unknown_provider, unknown_model, invalid_usage, price_error."""


def to_genai_usage(usage: Usage) -> genai_prices.Usage:
    """Canonical usage -> ``genai_prices.Usage`` (same conventions, see module docstring)."""
    return genai_prices.Usage(**_genai_values(usage))


def _genai_values(usage: Usage) -> dict[str, int]:
    values = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cached_input_tokens:
        values["cache_read_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens:
        values["cache_write_tokens"] = usage.cache_write_tokens
    if usage.cache_write_1h_tokens:
        values["cache_write_1h_tokens"] = usage.cache_write_1h_tokens
    if usage.reasoning_tokens:
        values["output_reasoning_tokens"] = usage.reasoning_tokens
    return values


# ------------------------------------------------------------------ snapshot-bound caches
class _State:
    snapshot: Any = None
    version: str = f"genai-prices-{GENAI_PRICES_VERSION}"
    plans: dict[int, tuple[Any, _Plan | None]] = {}


_state = _State()


def _current_snapshot() -> Any:
    snap = data_snapshot.get_snapshot()
    if snap is not _state.snapshot:  # first call, or UpdatePrices installed fresh data
        _state.snapshot = snap
        _state.plans = {}
        _lookup.cache_clear()
        version = f"genai-prices-{GENAI_PRICES_VERSION}"
        if getattr(snap, "from_auto_update", False):
            version += f"+{snap.timestamp:%Y%m%dT%H%M%S}"
        _state.version = version
    return snap


def price_data_version() -> str:
    """Version of the price data in use: ``genai-prices-<pkg version>[+<update timestamp>]``.

    genai-prices does not expose a data snapshot date for its bundled data, so the package
    version identifies it; data fetched by ``UpdatePrices`` adds the fetch timestamp.
    """
    _current_snapshot()
    return _state.version


@lru_cache(maxsize=4096)
def _lookup(provider: str, model: str) -> tuple[Any, Any] | str:
    """(provider, model) -> (genai Provider, ModelInfo), or the reason it is unpriced."""
    providers = _state.snapshot.providers
    prov = find_provider_by_id(providers, genai_provider_id(provider))
    if prov is None:
        return "unknown_provider"
    ref = model.strip().lower()
    found = prov.find_model(ref, all_providers=providers)
    if found is None and "/" in ref:
        # "openai/gpt-4o", "bedrock/anthropic.claude-..." (LiteLLM / gateway style)
        prefix, rest = ref.split("/", 1)
        if prefix in PROVIDER_ALIASES or find_provider_by_id(providers, prefix) is not None:
            found = prov.find_model(rest, all_providers=providers)
    if found is None:
        return "unknown_model"
    return prov, found


# ------------------------------------------------------------------ compiled price plans
class _Plan:
    """Price units of one ModelPrice, in genai-prices' summation and leaf orders."""

    __slots__ = ("leaf_order", "tiered", "units")

    def __init__(self, model_price: Any) -> None:
        registry = _get_registry()
        resolved = _collect_resolved_model_prices(model_price, registry)
        validate_priced_units(tuple(unit for unit, _ in resolved), registry)
        # (usage_key, price, per, direction) in summation order
        self.units = tuple(
            (unit.usage_key, price, unit.per, unit.dimensions.get("direction"))
            for unit, price in resolved
        )
        self.tiered = any(isinstance(price, TieredPrices) for _, price in resolved)
        token_units = [unit for unit, _ in resolved if unit.usage_key != "requests"]
        ordered = sorted(token_units, key=lambda u: (-len(u.dimensions), u.usage_key))
        self.leaf_order = tuple(
            (
                unit.usage_key,
                tuple(
                    d.usage_key
                    for d in ordered
                    if d is not unit and unit.dimensions.items() <= d.dimensions.items()
                ),
            )
            for unit in ordered
        )

    def calc(self, values: dict[str, int]) -> tuple[Decimal, Decimal, Decimal] | None:
        leaves: dict[str, int] = {"requests": 1}
        for key, descendants in self.leaf_order:
            leaf = values.get(key, 0)
            for d in descendants:
                leaf -= leaves[d]
            if leaf < 0:
                return None  # genai-prices raises "Invalid usage data"
            leaves[key] = leaf
        total_input = values["input_tokens"] if self.tiered else 0
        inp = out = total = Decimal(0)
        for key, price, per, direction in self.units:
            if isinstance(price, TieredPrices):
                rate = price.base
                for tier in reversed(price.tiers):
                    if total_input > tier.start:
                        rate = tier.price
                        break
            else:
                rate = price
            amount = rate * Decimal(leaves[key]) / per
            total += amount
            if direction == "input":
                inp += amount
            elif direction == "output":
                out += amount
        return inp, out, total


def _plan_for(model_price: Any) -> _Plan | None:
    entry = _state.plans.get(id(model_price))
    if entry is not None and entry[0] is model_price:
        return entry[1]
    plan: _Plan | None
    try:
        plan = _Plan(model_price) if _FAST_PATH else None
    except Exception:  # unknown price keys etc.: let genai-prices handle (or reject) it
        plan = None
    if len(_state.plans) > 10_000:
        _state.plans = {}
    _state.plans[id(model_price)] = (model_price, plan)  # keeps model_price alive: id stays valid
    return plan


# ------------------------------------------------------------------ public API
def price_call(
    provider: str, model: str, usage: Usage | Mapping[str, Any], when: datetime | None = None
) -> PriceResult:
    """Price one call; never raises.

    ``usage`` is a canonical :class:`Usage` (or any shape ``Usage`` accepts, e.g. a raw
    provider usage dict). ``when`` selects time-dependent prices (default: now; naive = UTC).
    """
    if not isinstance(usage, Usage):
        try:
            usage = Usage.model_validate(usage)
        except ValidationError:
            return PriceResult(None, "unpriced", price_data_version(), reason="invalid_usage")
    _current_snapshot()
    version = _state.version
    found = _lookup(provider, model)
    if isinstance(found, str):
        return PriceResult(None, "unpriced", version, reason=found)
    prov, model_info = found
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)

    def unpriced(reason: str) -> PriceResult:
        return PriceResult(
            None, "unpriced", version, provider_id=prov.id, model_id=model_info.id, reason=reason
        )

    try:
        model_price = model_info.get_prices(when)
        plan = _plan_for(model_price)
        if plan is not None and not (prov.id == "groq" and model_info.id.startswith("whisper")):
            values = _genai_values(usage)
            result = plan.calc(values)
            if result is None:
                return unpriced("invalid_usage")
            inp, out, total = result
        else:
            calc = model_info.calc_price(to_genai_usage(usage), prov, genai_request_timestamp=when)
            inp, out, total = calc.input_price, calc.output_price, calc.total_price
    except ValueError as exc:
        log.debug("unpriced", extra={"provider": provider, "model": model, "error": str(exc)})
        return unpriced("invalid_usage")
    except Exception as exc:  # never raise from pricing
        log.warning(
            "pricing failed", extra={"provider": provider, "model": model, "error": repr(exc)}
        )
        return unpriced("price_error")
    return PriceResult(
        float(total), "computed", version, float(inp), float(out), prov.id, model_info.id
    )


def _price_update(event: LlmCallEvent) -> dict[str, Any]:
    data = event.data
    if data.cost_usd is not None:
        return {"cost_source": "reported", "price_version": None}
    res = price_call(data.provider, data.model, data.usage, event.time)
    return {
        "cost_usd": res.total_usd,
        "cost_source": res.cost_source,
        "price_version": res.price_version,
    }


def apply_pricing(event: Event) -> Event:
    """Stamp ``cost_usd`` / ``cost_source`` / ``price_version`` on an ``agent.llm_call``.

    * client sent ``cost_usd`` -> kept, ``cost_source="reported"``, ``price_version=None``;
    * else priced at the event's ``time`` -> ``computed`` (cost_usd set) or ``unpriced``
      (cost_usd None, price_version = the price data that could not price it).

    Client-sent ``cost_source`` / ``price_version`` are always overwritten. Other event
    types are returned unchanged. Returns a copy; the input is not modified.
    """
    if not isinstance(event, LlmCallEvent):
        return event
    update = _price_update(event)
    return event.model_copy(update={"data": event.data.model_copy(update=update)})


def stamp_pricing(event: Event) -> None:
    """:func:`apply_pricing` in place, for an event the caller owns (no copies: hot path)."""
    if isinstance(event, LlmCallEvent):
        for name, value in _price_update(event).items():
            setattr(event.data, name, value)


def warm_up(*models: tuple[str, str]) -> None:
    """Load the price data (~0.2 s) and resolve ``(provider, model)`` pairs ahead of traffic."""
    usage = Usage(input_tokens=1, output_tokens=1)
    for provider, model in models or (("openai", "gpt-4o"),):
        price_call(provider, model, usage)


def clear_caches() -> None:
    """Forget cached lookups and plans (tests; done automatically on a new snapshot)."""
    _state.snapshot = None
    _state.plans = {}
    _lookup.cache_clear()
