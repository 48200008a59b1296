"""The models a remedy may fall back to: context windows and input prices.

Pure: no I/O. The entries come from genai-prices (``adapters/catalog.py`` builds them); this
module only answers the two questions a fallback asks: which model's context window fits
this request, and which model at another provider is equivalent to this one.

"Equivalent" is, in order: the same model served by another provider (``gpt-4o`` at OpenAI
and at Azure; Claude at Anthropic and at Bedrock), then a model at another provider whose
input price is within a factor of :data:`PRICE_BAND` of this one's and whose context window
is at least as large, the closest price first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: A model at another provider is equivalent when its input price is within this factor.
PRICE_BAND = 3.0


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """One model a fallback may choose.

    Examples
    --------
    >>> m = CatalogModel("openai", "gpt-4o", 128_000, 2.5, "gpt-4o")
    >>> m.fits(100_000), m.fits(200_000)
    (True, False)
    """

    provider: str
    model: str
    context_window: int
    input_usd_per_mtok: float
    #: the model's name without provider prefixes or dates: equal across providers
    family: str

    def fits(self, input_tokens: int) -> bool:
        return input_tokens <= self.context_window


#: ``(provider, model) -> True`` when a fallback must not choose it (an open breaker).
Excluded = Callable[[str, str], bool]


def _never(provider: str, model: str) -> bool:
    return False


class ModelCatalog:
    """The fallback candidates, looked up by provider and model.

    Examples
    --------
    >>> catalog = ModelCatalog([
    ...     CatalogModel("openai", "gpt-4o", 128_000, 2.5, "gpt-4o"),
    ...     CatalogModel("azure", "gpt-4o", 128_000, 2.5, "gpt-4o"),
    ...     CatalogModel("openai", "gpt-4.1", 1_000_000, 2.0, "gpt-4.1"),
    ... ])
    >>> [m.provider for m in catalog.equivalents("openai", "gpt-4o")]
    ['azure']
    >>> catalog.larger_window("openai", "gpt-4o", 300_000).model
    'gpt-4.1'
    """

    def __init__(self, models: Iterable[CatalogModel]) -> None:
        self.models = tuple(models)
        self._by_key = {(m.provider, m.model): m for m in self.models}

    def find(self, provider: str, model: str) -> CatalogModel | None:
        return self._by_key.get((provider, model))

    def context_window(self, provider: str, model: str) -> int | None:
        found = self.find(provider, model)
        return found.context_window if found else None

    def equivalents(
        self, provider: str, model: str, excluded: Excluded = _never
    ) -> list[CatalogModel]:
        """Models at other providers equivalent to ``model``, the best first."""
        current = self.find(provider, model)
        others = [
            m for m in self.models if m.provider != provider and not excluded(m.provider, m.model)
        ]
        if current is None:
            return [m for m in others if m.model == model]
        same = [m for m in others if m.family == current.family]
        similar = [
            m
            for m in others
            if m.family != current.family
            and m.context_window >= current.context_window
            and _within_band(m.input_usd_per_mtok, current.input_usd_per_mtok)
        ]
        similar.sort(key=lambda m: _price_distance(m, current))
        return same + similar

    def larger_window(
        self,
        provider: str,
        model: str,
        input_tokens: int | None,
        excluded: Excluded = _never,
    ) -> CatalogModel | None:
        """The cheapest model (same provider first) whose window fits ``input_tokens``, or, when
        the request's size is unknown, is larger than the current model's window."""
        current = self.find(provider, model)
        if input_tokens is not None:
            need = input_tokens
        elif current is not None:
            need = current.context_window + 1
        else:
            return None
        fitting = [
            m
            for m in self.models
            if m.fits(need)
            and (m.provider, m.model) != (provider, model)
            and not excluded(m.provider, m.model)
        ]
        if not fitting:
            return None
        return min(fitting, key=lambda m: (m.provider != provider, m.input_usd_per_mtok))


def _positive(price: float) -> float:
    return max(price, 1e-9)


def _price_distance(model: CatalogModel, reference: CatalogModel) -> float:
    ratio = _positive(model.input_usd_per_mtok) / _positive(reference.input_usd_per_mtok)
    return abs(math.log(ratio))


def _within_band(price: float, reference: float) -> bool:
    ratio = _positive(price) / _positive(reference)
    return 1 / PRICE_BAND <= ratio <= PRICE_BAND
