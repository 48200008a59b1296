"""Spend recomputed from the usage every ``agent.llm_call`` carries, with other prices.

Each cost event keeps its raw token usage next to the cost recorded when it was ingested, so a
price correction is a replay: :class:`Repricing` takes the records of ``agent.cost.v1`` one at
a time and sums, per model and per team, the recorded cost (*before*) and the cost at the new
prices (*after*). New prices come from a :class:`Pricer`: :func:`genai_prices_pricer` (the
installed genai-prices data, at the event's time, as ingest prices) or a :class:`TablePricer`
(an operator's price table, falling back to genai-prices for the models it does not list).

Sums are exact: every amount is a :class:`~decimal.Decimal` (a recorded float is taken as the
shortest decimal that prints it, which is the number its JSON carries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, cast
from uuid import UUID

from finops.common.events.price_table import PriceTable
from finops.common.events.pricing import price_call
from finops.common.events.schemas import LlmCallEvent
from finops.common.events.usage import Usage

NO_TEAM = "(no team)"
PRICE_TABLE = "price table"


@dataclass(frozen=True)
class NewPrice:
    """A call's cost at the new prices (``None``: they have no price for it) and who set it."""

    usd: Decimal | None
    source: str


class Pricer(Protocol):
    def __call__(self, provider: str, model: str, usage: Usage, when: datetime) -> NewPrice: ...


def genai_prices_pricer(provider: str, model: str, usage: Usage, when: datetime) -> NewPrice:
    """The installed genai-prices data, at the call's time (what ingest computes)."""
    result = price_call(provider, model, usage, when)
    usd = None if result.total_usd is None else Decimal(repr(result.total_usd))
    return NewPrice(usd, result.price_version or "genai-prices")


@dataclass(frozen=True)
class TablePricer:
    """An operator's price table; models it does not list are priced by ``fallback``."""

    table: PriceTable
    fallback: Pricer = genai_prices_pricer

    def __call__(self, provider: str, model: str, usage: Usage, when: datetime) -> NewPrice:
        prices = self.table.lookup(provider, model)
        if prices is None:
            return self.fallback(provider, model, usage, when)
        return NewPrice(prices.cost(usage), PRICE_TABLE)


@dataclass
class Spend:
    """Calls and spend of one group (a model, a team, or all) before and after repricing.

    Examples
    --------
    >>> spend = Spend()
    >>> spend.add(Decimal("0.010"), NewPrice(Decimal("0.004"), "price table"))
    >>> spend.add(None, NewPrice(Decimal("0.002"), "price table"))
    >>> spend.calls, spend.before_usd, spend.after_usd, spend.difference_usd
    (2, Decimal('0.010'), Decimal('0.006'), Decimal('-0.004'))
    >>> spend.unpriced_before, spend.unpriced_after
    (1, 0)
    """

    calls: int = 0
    before_usd: Decimal = Decimal(0)
    after_usd: Decimal = Decimal(0)
    unpriced_before: int = 0
    """Calls recorded without a cost (ingest could not price them)."""
    unpriced_after: int = 0
    """Calls the new prices cannot price; they add nothing to ``after_usd``."""
    price_sources: set[str] = field(default_factory=set)

    def add(self, before: Decimal | None, after: NewPrice) -> None:
        self.calls += 1
        if before is None:
            self.unpriced_before += 1
        else:
            self.before_usd += before
        if after.usd is None:
            self.unpriced_after += 1
        else:
            self.after_usd += after.usd
        self.price_sources.add(after.source)

    @property
    def difference_usd(self) -> Decimal:
        return self.after_usd - self.before_usd

    @property
    def change_unknown(self) -> str | None:
        """Why there is no :attr:`change`: ``"unpriced after"`` when the new prices price none
        of the calls (their after is no price, not a free model: a change would read
        -100 %), ``"no cost before"`` when the calls had none; None when there is one.

        >>> unpriced = Spend()
        >>> unpriced.add(Decimal("0.010"), NewPrice(None, "genai-prices"))
        >>> unpriced.change_unknown, unpriced.change
        ('unpriced after', None)
        """
        if self.calls and self.unpriced_after == self.calls:
            return "unpriced after"
        if not self.before_usd:
            return "no cost before"
        return None

    @property
    def change(self) -> Decimal | None:
        """``difference / before`` (-0.25: a quarter less); None when :attr:`change_unknown`
        says why not."""
        if self.change_unknown is not None:
            return None
        return self.difference_usd / self.before_usd

    def to_json(self) -> dict[str, object]:
        change = self.change
        return {
            "calls": self.calls,
            "before_usd": float(self.before_usd),
            "after_usd": float(self.after_usd),
            "difference_usd": float(self.difference_usd),
            "change": None if change is None else float(change),
            "change_unknown": self.change_unknown,
            "unpriced_before": self.unpriced_before,
            "unpriced_after": self.unpriced_after,
            "price_sources": sorted(self.price_sources),
        }


@dataclass(frozen=True)
class TimeWindow:
    """Event times from ``since`` (included) to ``until`` (excluded); ``None`` is open.

    Examples
    --------
    >>> from datetime import UTC
    >>> december = TimeWindow(since=datetime(2026, 12, 1, tzinfo=UTC))
    >>> december.holds(datetime(2026, 12, 1, tzinfo=UTC))
    True
    >>> december.holds(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    False
    """

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")

    def holds(self, when: datetime) -> bool:
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )


@dataclass
class Repricing:
    """The replay's running sums; feed it every record of ``agent.cost.v1`` with :meth:`add`.

    Records counted but not repriced: ``outside`` the time window, ``duplicates`` (an event id
    seen before: producers may deliver an event twice, consumers count it once), and ``invalid``
    (not a valid ``agent.llm_call``; the consumers sent those to the dead-letter topic).
    """

    pricer: Pricer
    window: TimeWindow = field(default_factory=TimeWindow)
    by_model: dict[str, Spend] = field(default_factory=dict)
    by_team: dict[str, Spend] = field(default_factory=dict)
    total: Spend = field(default_factory=Spend)
    records: int = 0
    outside: int = 0
    duplicates: int = 0
    invalid: int = 0
    _seen: set[UUID] = field(default_factory=set, repr=False)

    def add(self, value: bytes | str) -> None:
        """One record's value (the event's JSON)."""
        self.records += 1
        try:
            # decoded as the consumers decode it: the schema, then no string holding a NUL
            event = cast(LlmCallEvent, LlmCallEvent.from_kafka(value))
        except (ValueError, TypeError):  # ValidationError is a ValueError; TypeError: not a call
            self.invalid += 1
            return
        if not self.window.holds(event.time):
            self.outside += 1
            return
        if event.id in self._seen:
            self.duplicates += 1
            return
        self._seen.add(event.id)
        self._reprice(event)

    def _reprice(self, event: LlmCallEvent) -> None:
        data = event.data
        before = None if data.cost_usd is None else Decimal(repr(data.cost_usd))
        after = self.pricer(data.provider, data.model, data.usage, event.time)
        model = f"{data.provider}/{data.model}"
        team = data.team or NO_TEAM
        for spend in (
            self.by_model.setdefault(model, Spend()),
            self.by_team.setdefault(team, Spend()),
            self.total,
        ):
            spend.add(before, after)

    @property
    def repriced(self) -> int:
        return self.total.calls

    def to_json(self) -> dict[str, object]:
        def groups(spends: dict[str, Spend]) -> dict[str, dict[str, object]]:
            return {name: spends[name].to_json() for name in sorted(spends)}

        window = self.window
        return {
            "since": window.since.isoformat() if window.since else None,
            "until": window.until.isoformat() if window.until else None,
            "records": self.records,
            "repriced": self.repriced,
            "outside_window": self.outside,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "by_model": groups(self.by_model),
            "by_team": groups(self.by_team),
            "total": self.total.to_json(),
        }
