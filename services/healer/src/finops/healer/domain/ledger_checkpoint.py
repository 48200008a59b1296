"""The healing ledger as saved: its entries as JSON rows, a checkpoint's changed segments.

Pure: no I/O. :meth:`~finops.healer.domain.healing_stats.HealingLedger.take_changes` hands
out a :class:`LedgerChanges`; its :meth:`~LedgerChanges.encode` gives the JSON the ledger
store writes, and :meth:`~finops.healer.domain.healing_stats.HealingLedger.from_state` reads
the rows back with :func:`record_from_state`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from finops.common.checkpoints import json_bytes
from finops.common.id_dedupe import IdDedupe
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.healing_records import AdviceRecord, Outcome, PendingAdvice
from finops.healer.domain.remedies import Action


@dataclass(frozen=True)
class LedgerChanges:
    """A checkpoint's worth of a :class:`HealingLedger`: its small parts whole, and the changed
    segments of ``pending`` and ``healed_chains`` (a segment with no entries left is to be
    removed). The entries are immutable and shared with the live ledger, so :meth:`encode`
    may run elsewhere (on a thread) while it changes."""

    small: dict[str, Any]
    error_ids: IdDedupe
    pending: dict[int, list[PendingAdvice]]
    chains: dict[int, list[str]]
    #: every segment is in it: it needs no segment saved before
    complete: bool

    def encode(self) -> EncodedChanges:
        return EncodedChanges(
            small=json_bytes({**self.small, "error_ids": self.error_ids.to_state()}),
            segments=[
                *(
                    SegmentText(PENDING, segment, _segment_json([pending_state(e) for e in rows]))
                    for segment, rows in self.pending.items()
                ),
                *(
                    SegmentText(HEALED_CHAINS, segment, _segment_json(rows))
                    for segment, rows in self.chains.items()
                ),
            ],
            complete=self.complete,
        )


#: the names of the two large parts, as a checkpoint's segments name them
PENDING = "pending"
HEALED_CHAINS = "healed_chains"


@dataclass(frozen=True)
class SegmentText:
    """One changed segment as JSON (a list of its entries); ``None``: the segment is empty."""

    part: str
    segment: int
    text: bytes | None


@dataclass(frozen=True)
class EncodedChanges:
    """:class:`LedgerChanges` as JSON: the small parts' object and each changed segment's."""

    small: bytes
    segments: list[SegmentText]
    complete: bool


def _segment_json(rows: list[Any]) -> bytes | None:
    # A segment is small enough (SEGMENT_SIZE entries) for one call of the encoder.
    return json.dumps(rows, separators=(",", ":")).encode() if rows else None


def pending_state(entry: PendingAdvice) -> dict[str, Any]:
    return {
        **record_state(entry.record),
        "chain": entry.chain,
        "chain_start_s": entry.chain_start_s,
        "chain_kind": entry.chain_kind.value,
        "resolved": entry.resolved,
    }


# Written out field by field: ``dataclasses.asdict`` deep-copies every value and took about
# 10 µs an entry, 2 s of a checkpoint at MAX_PENDING. Same keys, same order.
def record_state(record: AdviceRecord) -> dict[str, Any]:
    return {
        "advice_id": record.advice_id,
        "kind": record.kind.value,
        "provider": record.provider,
        "model": record.model,
        "action": record.action.value,
        "at_s": record.at_s,
        "follows": record.follows,
    }


def outcome_state(outcome: Outcome) -> dict[str, Any]:
    return {
        "advice_id": outcome.advice_id,
        "healed": outcome.healed,
        "at_s": outcome.at_s,
        "cost_usd": outcome.cost_usd,
        "baseline_cost_usd": outcome.baseline_cost_usd,
        "provider": outcome.provider,
        "model": outcome.model,
        "usage": outcome.usage,
    }


def record_from_state(row: dict[str, Any]) -> AdviceRecord:
    return AdviceRecord(
        row["advice_id"],
        ErrorKind(row["kind"]),
        row["provider"],
        row["model"],
        Action(row["action"]),
        float(row["at_s"]),
        row.get("follows"),
    )
