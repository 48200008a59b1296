"""The local broker's storage after a kill in the middle of a write: what is repaired, what
is kept (real files laid out as s3rver stores tansu's objects)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from finops.cli.stack.storage_repair import OBJECT_SUFFIX, repair_storage

PARTITION = "clusters/c/topics/finops.provider-outcomes.v1/partitions/0000000000"


def _batch(records: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for offset in range(records):
        builder.append(offset, timestamp=1, key=b"k", value=b'{"x":1}', headers=[])
    return bytes(builder.build())


def _put(bucket: Path, key: str, data: bytes) -> Path:
    path = bucket / f"{key}{OBJECT_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.with_name(path.name + ".md5").write_text(
        hashlib.md5(data, usedforsecurity=False).hexdigest()
    )
    path.with_name(path.name.removesuffix(OBJECT_SUFFIX) + "._S3rver_metadata.json").write_text(
        "{}"
    )
    return path


def test_a_broken_watermark_is_rebuilt_from_the_whole_batches_and_a_cut_batch_goes(tmp_path):
    _put(tmp_path, f"{PARTITION}/records/00000000000000000000.batch", _batch(3))
    _put(tmp_path, f"{PARTITION}/records/00000000000000000003.batch", _batch(2))
    cut = _put(tmp_path, f"{PARTITION}/records/00000000000000000005.batch", _batch(4)[:40])
    watermark = _put(tmp_path, f"{PARTITION}/watermark.json", b"")

    repairs = repair_storage(tmp_path)

    assert [(r.key.rsplit("/", 1)[-1], r.action) for r in repairs] == [
        ("00000000000000000005.batch", "removed a batch cut short"),
        ("watermark.json", "rebuilt the watermark: high 5"),
    ]
    assert json.loads(watermark.read_bytes()) == {"low": None, "high": 5, "timestamps": None}
    md5 = watermark.with_name(watermark.name + ".md5").read_text()
    assert md5 == hashlib.md5(watermark.read_bytes(), usedforsecurity=False).hexdigest()
    assert sorted(p.name for p in cut.parent.iterdir() if "0005" in p.name) == []


def test_unreadable_group_state_goes_and_whole_objects_stay_byte_for_byte(tmp_path):
    whole = _batch(2)
    batch = _put(tmp_path, f"{PARTITION}/records/00000000000000000000.batch", whole)
    watermark = _put(tmp_path, f"{PARTITION}/watermark.json", b'{"low":null,"high":2}')
    group = _put(tmp_path, "clusters/c/groups/consumers/finops-healer.json", b'{"gen')

    repairs = repair_storage(tmp_path)

    assert [(r.key, r.action) for r in repairs] == [
        ("clusters/c/groups/consumers/finops-healer.json", "removed unreadable state")
    ]
    assert not group.exists() and not list(group.parent.iterdir())
    assert batch.read_bytes() == whole
    assert watermark.read_bytes() == b'{"low":null,"high":2}'
    assert repair_storage(tmp_path) == []


def test_a_missing_bucket_needs_no_repair(tmp_path):
    assert repair_storage(tmp_path / "not-created-yet") == []
