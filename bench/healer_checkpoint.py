"""The healer's ledger checkpoint at full size: whole, as before, against only what changed.

The healing ledger remembers up to ``MAX_PENDING`` (200,000) advices and as many healed
chains; a healer that has given that many advices stays at that size. Its outcome intake
checkpoints every 5 s. This script fills a ledger to ``--advices`` resolved advices (each a
healed chain), then measures, median of ``--repeats``:

1. the whole ledger converted, encoded and compressed, as every checkpoint did before
   (the baseline; a new instance's first checkpoint still does this once);
2. a checkpoint of the changes of one interval at ``--rate`` errors/s: that many new advices
   and as many outcomes, the segments they changed converted, encoded and compressed.

Each row gives the CPU time of converting and encoding (on a thread, but holding the GIL that
the requests' event loop waits for), of compressing (zlib lets go of the GIL), and the bytes
written to PostgreSQL. The target is issue 10's
advice p99 of 10 ms: a checkpoint that holds the GIL longer shows in the requests' tail.
No stack is needed.

    .venv/bin/python bench/healer_checkpoint.py [--advices 200000] [--rate 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from itertools import count

from _figures import Measurement, at_most, record

from finops.common.checkpoints import json_bytes
from finops.common.provider_errors.taxonomy import ErrorKind
from finops.healer.domain.healing_records import AdviceRecord, Outcome
from finops.healer.domain.healing_stats import HealingLedger
from finops.healer.domain.remedies import Action

QUICK_ARGS = ["--advices", "20000", "--repeats", "3"]
QUICK_SECONDS = 5

INTERVAL_S = 5.0  # FINOPS_EFFECTIVENESS_CHECKPOINT_INTERVAL_S's default


def give_advice(ledger: HealingLedger, at_s: float) -> None:
    """One error, its advice, and the call that healed it."""
    advice_id = str(uuid.uuid4())
    ledger.failed(ErrorKind.OVERLOADED, None, at_s, uuid.uuid4())
    ledger.advised(
        AdviceRecord(advice_id, ErrorKind.OVERLOADED, "openai", "gpt-4o", Action.RETRY, at_s)
    )
    ledger.healed(Outcome(advice_id, True, at_s + 1.0, 0.01, 0.01))


@dataclass(frozen=True)
class Cost:
    """One checkpoint's CPU: converting and encoding it (which holds the GIL the requests'
    event loop waits for), compressing it (zlib lets go of the GIL), and the bytes written."""

    encode_ms: float
    compress_ms: float
    size: int


def whole_checkpoint(ledger: HealingLedger) -> Cost:
    """A whole-ledger checkpoint, converted as every checkpoint was before this change."""
    start = time.process_time()
    text = json_bytes(ledger.to_state())
    encoded = time.process_time()
    size = len(zlib.compress(text, 1))
    return Cost(_ms(start, encoded), _ms(encoded, time.process_time()), size)


def changes_checkpoint(ledger: HealingLedger) -> Cost:
    """A checkpoint of what changed since the last one, as the outcome intake takes it."""
    start = time.process_time()
    changes = ledger.take_changes().encode()
    encoded = time.process_time()
    texts = [changes.small, *(s.text for s in changes.segments if s.text is not None)]
    size = sum(len(zlib.compress(text, 1)) for text in texts)
    return Cost(_ms(start, encoded), _ms(encoded, time.process_time()), size)


def _ms(start: float, end: float) -> float:
    return 1000.0 * (end - start)


def row(label: str, costs: list[Cost], note: str) -> str:
    encode = statistics.median(c.encode_ms for c in costs)
    compress = statistics.median(c.compress_ms for c in costs)
    size = statistics.median(c.size for c in costs)
    return f"  {label:<34} {encode:>9.1f} ms {compress:>9.1f} ms {size / 1e3:>10,.0f} kB  {note}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--advices", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=100.0, help="errors/s between checkpoints")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ledger, clock = HealingLedger(), count()
    for _ in range(args.advices):
        give_advice(ledger, float(next(clock)))
    first = [changes_checkpoint(ledger)]  # every segment: a new instance's first checkpoint
    whole = [whole_checkpoint(ledger) for _ in range(args.repeats)]
    per_interval = int(args.rate * INTERVAL_S)
    changed = []
    for _ in range(args.repeats):
        for _ in range(per_interval):
            give_advice(ledger, float(next(clock)))
        changed.append(changes_checkpoint(ledger))
    print(
        f"healer ledger checkpoint, {len(ledger.pending):,} pending advices, "
        f"{len(ledger.healed_chains):,} healed chains; {per_interval:,} new advices and outcomes "
        f"per {INTERVAL_S:.0f} s interval (CPU time, median of {args.repeats})"
    )
    print(f"  {'':<34} {'holds GIL':>12} {'compress':>12} {'written':>13}")
    print(row("whole ledger, as before", whole, "(baseline)"))
    print(row("what changed in one interval", changed, "(target: GIL <= 10 ms)"))
    print(row("first checkpoint of an instance", first, "(once per start)"))
    changed_ms = statistics.median(c.encode_ms for c in changed)
    whole_ms = statistics.median(c.encode_ms for c in whole)
    record(
        Measurement(
            "healer ledger checkpoint of one interval, CPU holding the GIL", changed_ms, "ms"
        ),
        Measurement("the whole ledger, as every checkpoint did before", whole_ms, "ms"),
        at_most(10, "#10"),
        detail=(
            f"{len(ledger.pending):,} pending advices; "
            f"{statistics.median(c.size for c in changed) / 1e3:,.0f} kB written against "
            f"{statistics.median(c.size for c in whole) / 1e6:.1f} MB"
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
