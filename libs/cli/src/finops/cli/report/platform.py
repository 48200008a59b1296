"""The platform's own figures for ``finops report``, read from the services' APIs now."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from finops.cli.report.model import Figure


@dataclass(frozen=True)
class PlatformState:
    """The answers the report reads, each as its service gave it."""

    #: optimizer ``GET /api/stats/summary``
    summary: dict[str, Any]
    #: healer ``GET /api/healing/stats``
    healing: dict[str, Any]
    #: healer ``GET /api/healing/circuits``
    circuits: dict[str, Any]
    #: experiments ``GET /api/experiments``
    experiments: list[dict[str, Any]]

    def figures(self) -> list[Figure]:
        """The report's "platform now" table.

        Examples
        --------
        >>> state = PlatformState(
        ...     {"events": 10, "duplicates": 1, "redelivered": 2,
        ...      "fleet": {"calls": 8, "spend_usd": 0.5, "success_rate": 0.75}},
        ...     {"kinds": {"rate_limit": {"occurrences": 6, "advised": 4, "healed": 3}}},
        ...     {"circuits": [{"state": "open"}, {"state": "closed"}]},
        ...     [{"status": "decided"}, {"status": "running"}, {"status": "decided"}])
        >>> [(f.label, f.value) for f in state.figures()]  # doctest: +NORMALIZE_WHITESPACE
        [('events taken in', '10'), ('fleet spend', '$0.5000'), ('healed by advice', '3 of 4'),
         ('breakers', 'closed 1, open 1'), ('experiments', 'decided 2, running 1')]
        >>> state.figures()[0].note  # doctest: +NORMALIZE_WHITESPACE
        'by the optimizer; 2 read again and dropped (records forwarded again after a restart
         or a change of workers), 1 sent twice by the fleet (dropped by their ids)'
        >>> state.figures()[1].note
        '8 calls reported (75.0% successful), 6 more failed as errors'
        """
        fleet = self.summary.get("fleet") or {}
        kinds = (self.healing.get("kinds") or {}).values()
        advised = sum(int(k.get("advised") or 0) for k in kinds)
        healed = sum(int(k.get("healed") or 0) for k in kinds)
        # An agent reports a failed call as an error event, not as a call (the SDK does):
        # the calls' own success rate leaves those out, so they are named next to it.
        errors = sum(int(k.get("occurrences") or 0) for k in kinds)
        success = fleet.get("success_rate")
        return [
            Figure(
                "events taken in",
                f"{self.summary.get('events', 0):,}",
                # the optimizer drops an event whose id it has counted: a record read again
                # (forwarded again after a restart, a rebalance, another number of workers) or
                # the same event sent again by an agent, counted apart
                f"by the optimizer; {self.summary.get('redelivered', 0):,} read again and "
                "dropped (records forwarded again after a restart or a change of workers), "
                f"{self.summary.get('duplicates', 0):,} sent twice by the fleet (dropped by "
                "their ids)",
            ),
            Figure(
                "fleet spend",
                f"${float(fleet.get('spend_usd') or 0.0):.4f}",
                f"{int(fleet.get('calls') or 0):,} calls reported ("
                + (f"{success:.1%} successful" if success is not None else "none yet")
                + f"), {errors:,} more failed as errors",
            ),
            Figure("healed by advice", f"{healed:,} of {advised:,}", "healer, every kind"),
            Figure("breakers", _by_state(s["state"] for s in self.circuits.get("circuits", []))),
            Figure("experiments", _by_state(e["status"] for e in self.experiments)),
        ]


def _by_state(states: Any) -> str:
    counts = Counter(states)
    return ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "none"


async def read_platform(http: httpx.AsyncClient, urls: dict[str, str]) -> PlatformState:
    """Each answer with the operator's ``http`` client; a refusal raises ``HTTPStatusError``."""

    async def get(service: str, path: str) -> Any:
        resp = await http.get(urls[service].rstrip("/") + path)
        resp.raise_for_status()
        return resp.json()

    return PlatformState(
        summary=await get("optimizer", "/api/stats/summary"),
        healing=await get("healer", "/api/healing/stats"),
        circuits=await get("healer", "/api/healing/circuits"),
        experiments=(await get("experiments", "/api/experiments")).get("experiments", []),
    )
