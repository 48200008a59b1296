"""Repairs what a killed broker can leave half-written in the local broker's disk storage.

The local broker (tansu) keeps its log as objects in s3rver, which writes each object's file
as the bytes arrive. When the broker is killed in the middle of a write, the object stays
empty or cut short. Tansu then fails every fetch of that partition ("EOF while parsing a
value"), so the broker gate (:mod:`finops.cli.stack.broker_gate`) never opens again. The stack
runs :func:`repair_storage` before every (re)start of the broker:

- a record batch cut short was never acknowledged to its producer (the broker acknowledges a
  produce after the write): it goes, and its offsets are written again by the next produce;
- a partition's ``watermark.json`` that does not parse is rebuilt from the batches stored
  for the partition (its high watermark is the offset after their last record);
- any other JSON object that does not parse (a consumer group's or producers' state) goes:
  the broker starts that piece of state afresh, and every service resumes from the offsets it
  checkpointed itself.

Real Apache Kafka recovers its own log; this module is part of the local stack only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

#: s3rver stores an object's bytes in ``<key>._S3rver_object`` next to two sidecar files.
OBJECT_SUFFIX = "._S3rver_object"
SIDECARS = ("._S3rver_object.md5", "._S3rver_metadata.json")
#: A Kafka v2 record batch: base offset (8 bytes) and batch length (4) come first, then 49
#: more header bytes; the last offset delta is at bytes 23-26.
BATCH_HEADER = 61


@dataclass(frozen=True)
class Repair:
    """One object of the broker's storage repaired: its key and what was done."""

    key: str
    action: str


def repair_storage(bucket: Path) -> list[Repair]:
    """Repair every half-written object under ``bucket`` (s3rver's folder of the bucket).

    Examples
    --------
    >>> import tempfile
    >>> bucket = Path(tempfile.mkdtemp())
    >>> partition = bucket / "clusters/c/topics/t/partitions/0000000000"
    >>> (partition / "records").mkdir(parents=True)
    >>> _ = (partition / f"watermark.json{OBJECT_SUFFIX}").write_bytes(b"")
    >>> [r.action for r in repair_storage(bucket)]
    ['rebuilt the watermark: high None']
    >>> json.loads((partition / f"watermark.json{OBJECT_SUFFIX}").read_bytes())
    {'low': None, 'high': None, 'timestamps': None}
    """
    repairs: list[Repair] = []
    objects = sorted(bucket.rglob(f"*{OBJECT_SUFFIX}"))
    for path in objects:
        if path.name.endswith(f".batch{OBJECT_SUFFIX}") and not _whole_batch(path):
            _remove(path)
            repairs.append(Repair(_key(bucket, path), "removed a batch cut short"))
    for path in objects:
        if not path.name.endswith(f".json{OBJECT_SUFFIX}") or not path.exists():
            continue
        try:
            json.loads(path.read_bytes())
        except ValueError:
            if path.name == f"watermark.json{OBJECT_SUFFIX}":
                high = _high_watermark(path.parent / "records")
                _write(path, {"low": None, "high": high, "timestamps": None})
                repairs.append(Repair(_key(bucket, path), f"rebuilt the watermark: high {high}"))
            else:
                _remove(path)
                repairs.append(Repair(_key(bucket, path), "removed unreadable state"))
    return repairs


def _whole_batch(path: Path) -> bool:
    """Whether the batch's length field matches the object's size (only its first bytes are
    read: the stack repairs before every broker start, over every stored batch)."""
    size = path.stat().st_size
    if size < BATCH_HEADER:
        return False
    with path.open("rb") as batch:
        head = batch.read(12)
    return size == 12 + int.from_bytes(head[8:12], "big")


def _high_watermark(records: Path) -> int | None:
    """The offset after the last record of the batches stored in ``records``."""
    high: int | None = None
    for path in records.glob(f"*.batch{OBJECT_SUFFIX}"):
        base = int(path.name.split(".", 1)[0])
        with path.open("rb") as batch:
            last_delta = int.from_bytes(batch.read(27)[23:27], "big", signed=True)
        high = max(high or 0, base + last_delta + 1)
    return high


def _write(path: Path, value: object) -> None:
    data = json.dumps(value, separators=(",", ":")).encode()
    path.write_bytes(data)
    # s3rver answers the object's ETag from this file (tansu updates a watermark if it matches)
    path.with_name(path.name + ".md5").write_text(
        hashlib.md5(data, usedforsecurity=False).hexdigest()
    )


def _remove(path: Path) -> None:
    stem = path.name.removesuffix(OBJECT_SUFFIX)
    path.unlink()
    for sidecar in SIDECARS:
        path.with_name(stem + sidecar).unlink(missing_ok=True)


def _key(bucket: Path, path: Path) -> str:
    return str(path.relative_to(bucket)).removesuffix(OBJECT_SUFFIX)
