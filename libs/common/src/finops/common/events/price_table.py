"""A price table an operator writes: USD per million tokens, per provider and model.

The file ``finops reprice --prices FILE`` reads is CSV with a header row::

    provider,model,input,output,cached_input,cache_write
    openai,gpt-4o,2.50,10.00,1.25,
    anthropic,claude-3-5-sonnet,3.00,15.00,0.30,3.75

* ``provider`` and ``model`` as events carry them (providers are matched through the same
  aliases as genai-prices lookups, so ``gemini`` and ``google`` are one provider; both are
  matched without regard to case);
* ``input``, ``output``: USD per million tokens (required);
* ``cached_input``, ``cache_write``: USD per million cache-read / cache-write tokens
  (optional columns; a blank cell prices those tokens at ``input``);
* ``cache_write_1h``: USD per million of the cache-write tokens kept an hour (Anthropic's
  1-hour cache, dearer than its 5-minute one; optional; blank: ``cache_write``).

Reasoning tokens are output tokens and are priced at ``output``. One row per (provider, model).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from finops.common.events.pricing import genai_provider_id
from finops.common.events.usage import Usage

PER_MILLION = Decimal(1_000_000)
#: the dearest price a table may give, USD per million tokens (a dollar a token): the sums and
#: their micro-dollar rounding stay within the 28 digits of decimal arithmetic
MAX_PRICE = Decimal(1_000_000)
REQUIRED_COLUMNS = ("provider", "model", "input", "output")
OPTIONAL_COLUMNS = ("cached_input", "cache_write", "cache_write_1h")
COLUMNS_HELP = (
    "provider,model,input,output[,cached_input,cache_write,cache_write_1h] (USD per million tokens)"
)


class PriceTableError(ValueError):
    """A price table that cannot be read; the message names the line and what is wrong."""


@dataclass(frozen=True)
class TokenPrices:
    """USD per million tokens of one model.

    Examples
    --------
    >>> prices = TokenPrices(Decimal("2.50"), Decimal("10"), cached_input=Decimal("1.25"))
    >>> prices.cost(Usage(input_tokens=2000, output_tokens=300, cached_input_tokens=1000))
    Decimal('0.00675')
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    #: the cache writes kept an hour (``Usage.cache_write_1h_tokens``, part of the writes)
    cache_write_1h: Decimal | None = None

    def cost(self, usage: Usage) -> Decimal:
        """The exact cost of ``usage`` in USD."""
        cached = self.input if self.cached_input is None else self.cached_input
        write = self.input if self.cache_write is None else self.cache_write
        write_1h = write if self.cache_write_1h is None else self.cache_write_1h
        hour = usage.cache_write_1h_tokens
        micro = (
            usage.uncached_input_tokens * self.input
            + usage.cached_input_tokens * cached
            + (usage.cache_write_tokens - hour) * write
            + hour * write_1h
            + usage.output_tokens * self.output
        )
        return micro / PER_MILLION


def price_key(provider: str, model: str) -> tuple[str, str]:
    """How a table row and an event's (provider, model) are matched."""
    return genai_provider_id(provider), model.strip().lower()


@dataclass(frozen=True)
class PriceTable:
    """Token prices by (provider, model); see the module docstring for the file format.

    Examples
    --------
    >>> csv_text = "provider,model,input,output\\ngemini,Gemini-2.0-Flash,0.1,0.4\\n"
    >>> table = parse_price_table(csv_text)
    >>> prices = table.lookup("google", "gemini-2.0-flash")
    >>> prices.input, prices.output, prices.cache_write
    (Decimal('0.1'), Decimal('0.4'), None)
    >>> table.lookup("openai", "gpt-4o") is None
    True
    """

    prices: Mapping[tuple[str, str], TokenPrices]

    def lookup(self, provider: str, model: str) -> TokenPrices | None:
        return self.prices.get(price_key(provider, model))


def _price(row: Mapping[str, str | None], column: str, line: int) -> Decimal | None:
    text = (row.get(column) or "").strip()
    if not text:
        if column in REQUIRED_COLUMNS:
            raise PriceTableError(f"line {line}: {column} is empty")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise PriceTableError(f"line {line}: {column} is not a number: {text!r}") from None
    if not value.is_finite() or not 0 <= value <= MAX_PRICE:
        raise PriceTableError(
            f"line {line}: {column} must be a price from 0 to {MAX_PRICE:,} "
            f"(USD per million tokens), got {text!r}"
        )
    return value


def parse_price_table(text: str) -> PriceTable:
    """Read a price table's CSV text; raises :class:`PriceTableError` saying where it is wrong."""
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PriceTableError(f"the header lacks {', '.join(missing)} (columns: {COLUMNS_HELP})")
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise PriceTableError(f"unknown columns {', '.join(unknown)} (columns: {COLUMNS_HELP})")
    reader.fieldnames = header
    prices: dict[tuple[str, str], TokenPrices] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise PriceTableError(f"line {line}: more cells than columns")
        provider, model = (row.get("provider") or "").strip(), (row.get("model") or "").strip()
        if not provider or not model:
            raise PriceTableError(f"line {line}: provider and model are required")
        key = price_key(provider, model)
        if key in prices:
            raise PriceTableError(f"line {line}: {provider}/{model} is priced twice")
        input_price, output_price = _price(row, "input", line), _price(row, "output", line)
        assert input_price is not None and output_price is not None  # required columns
        prices[key] = TokenPrices(
            input=input_price,
            output=output_price,
            cached_input=_price(row, "cached_input", line),
            cache_write=_price(row, "cache_write", line),
            cache_write_1h=_price(row, "cache_write_1h", line),
        )
    if not prices:
        raise PriceTableError(f"no prices: the file has a header and no rows ({COLUMNS_HELP})")
    return PriceTable(prices)
