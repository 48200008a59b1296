"""The fallback catalog from genai-prices: context windows and input prices of the models
a remedy may switch to (``HealerSettings.fallback_models``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import genai_prices.data as prices

from finops.common.events import genai_provider_id
from finops.healer.domain.catalog import CatalogModel, ModelCatalog

log = logging.getLogger(__name__)

# "global.anthropic.claude-sonnet-4-5-20250929-v1:0" -> "claude-sonnet-4-5"
_REGION_AND_VENDOR = re.compile(r"^(?:(?:global|regional|us|eu|apac)\.)?(?:[a-z]+\.)?(?=[a-z])")
_DATE_AND_VERSION = re.compile(r"(?:-\d{8})?(?:-v\d+(?::\d+)?)?$|@\d{8}$")


def model_family(model: str) -> str:
    """The model's name without region, vendor prefix, date or version.

    >>> model_family("global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    'claude-sonnet-4-5'
    >>> model_family("gpt-4o")
    'gpt-4o'
    """
    name = model.strip().lower()
    if "." in name.split("-", 1)[0]:
        name = _REGION_AND_VENDOR.sub("", name, count=1)
    return _DATE_AND_VERSION.sub("", name)


def _input_price(model: Any) -> float | None:
    price = model.prices if not isinstance(model.prices, list) else model.prices[-1].prices
    value = getattr(price, "input_mtok", None)
    if isinstance(value, Decimal):
        return float(value)
    base = getattr(value, "base", None)
    return float(base) if isinstance(base, Decimal) else None


def _lookup(provider: str, model: str) -> CatalogModel | None:
    provider_id = genai_provider_id(provider)
    found = next((p for p in prices.providers if p.id == provider_id), None)
    info = found.find_model(model) if found else None
    if info is None or not info.context_window:
        return None
    price = _input_price(info)
    if price is None:
        return None
    return CatalogModel(provider, model, int(info.context_window), price, model_family(model))


def catalog_from_prices(models: Iterable[str]) -> ModelCatalog:
    """``"provider/model"`` entries with what genai-prices knows of them; an entry it does
    not know (no context window or input price) is left out with a warning."""
    entries = []
    for entry in models:
        provider, _, model = entry.partition("/")
        known = _lookup(provider, model)
        if known is None:
            log.warning("fallback model %s is unknown to genai-prices; left out", entry)
            continue
        entries.append(known)
    return ModelCatalog(entries)
