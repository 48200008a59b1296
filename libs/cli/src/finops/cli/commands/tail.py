"""`finops tail`: print a topic's records as they arrive, filtered by fields of their JSON."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.markup import escape

from finops.cli.failures import CliError
from finops.cli.output import console, printable
from finops.cli.typer_app import positive_seconds


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


@dataclass(frozen=True)
class FieldFilter:
    """``--filter key=value``: the field at the dotted ``key`` of a record's JSON value equals
    ``value`` read as JSON when it parses (``true``, ``null``, ``500``, ``"x"``), else as text.
    Numbers compare as numbers (``500`` matches ``500.0``), never a boolean; a field the record
    lacks counts as ``null``; a text field also matches the value as written.

    >>> f = FieldFilter.parse("data.latency_ms=500")
    >>> f.matches({"data": {"latency_ms": 500.0}}), f.matches({"data": {"latency_ms": "500"}})
    (True, True)
    >>> FieldFilter.parse("data.success=true").matches({"data": {"success": 1}})
    False
    >>> FieldFilter.parse("data.team=null").matches({"data": {}})
    True
    """

    key: str
    text: str
    value: Any
    is_json: bool

    @classmethod
    def parse(cls, item: str) -> FieldFilter:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise CliError(f"--filter takes key=value, got {item!r} (see `finops tail --help`)", 2)
        try:
            return cls(key, text, json.loads(text), True)
        except ValueError:
            return cls(key, text, text, False)

    def matches(self, record: Any) -> bool:
        if not isinstance(record, dict):
            return False
        actual = _lookup(record, self.key)
        if isinstance(actual, str) and actual == self.text:
            return True
        return _json_equal(actual, self.value)


def _json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON values: true is not 1, 500 is 500.0, a text is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_json_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


#: how long `finops tail` waits for the last record of a partition to learn where it ends
TAIL_END_PROBE_S = 2.0


#: the fields of a record its summary shows, in this order, wherever a record has them (an
#: event's ``type`` on its envelope, the others in its ``data``, or at the top of a record
#: without one; a dotted name reads inside a field, as ``--filter`` does): what the record is
#: (an event's type, an announcement's, alert's or advice's kind, an error event's error
#: kind, an experiment's name, status and winner, a breaker's state), whom and what it
#: concerns (an alert's subject and severity, a provider outcome's verdict, a breaker's
#: failure rate, an advice's remedy, an operator change's number and arguments); last,
#: quoted, why (:data:`QUOTED_FIELDS`). tests/unit/cli/test_tail_summary.py holds the line
#: of a record of each topic of :mod:`finops.common.topics`.
SUMMARY_FIELDS = (
    "type",
    "kind",
    "error.kind",
    "name",
    "status",
    "state",
    "winner",
    "subject",
    "severity",
    "agent_id",
    "task_type",
    "provider",
    "model",
    "failed",
    "failure_rate",
    "remedy.action",
    "cost_usd",
    "latency_ms",
    "seq",
    "args",
    "reason",
    "message",
)
#: the summary fields that are sentences, shown JSON-quoted (their spaces would read as fields):
#: why an experiment stopped or was decided, a breaker opened, a pick or a remedy was made;
#: what an alert says
QUOTED_FIELDS = frozenset({"reason", "message"})
#: the longest error a dead letter's summary shows, and the longest reason, message or
#: argument list (``--json`` shows them whole)
SUMMARY_ERROR_CHARS = 200
#: how much of the JSON of a record without any :data:`SUMMARY_FIELDS` its summary shows
SUMMARY_JSON_CHARS = 160


@dataclass(frozen=True)
class BinaryValue:
    """A record value that is not UTF-8 text (an optimizer shard is zlib-compressed JSON):
    only its size is shown, never its bytes."""

    size: int

    def __str__(self) -> str:
        return f"<binary, {self.size} bytes>"


def _cut(text: str, limit: int = SUMMARY_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quoted(text: str) -> str:
    """``text`` on one line, cut to :data:`SUMMARY_ERROR_CHARS`, JSON-quoted: ASCII only when
    it holds a character that is not printable (a bidi override would reorder the line)."""
    text = _cut(" ".join(text.split()))
    return json.dumps(text, ensure_ascii=not text.isprintable())


def _compact_json(value: Any) -> str:
    """JSON on one line without spaces, ASCII only (no character of it can reorder or break
    the line)."""
    return json.dumps(value, separators=(",", ":"))


def _field_text(name: str, value: Any) -> str:
    """A summary field's value: a sentence quoted, a flag, list or object as JSON (``false``,
    not Python's ``False``), anything else as it is when printable."""
    if name in QUOTED_FIELDS:
        return _quoted(value if isinstance(value, str) else _compact_json(value))
    if isinstance(value, bool | list | dict):
        return _cut(_compact_json(value))
    return printable(value)


def _summary(value: Any, headers: dict[str, str] | None = None, key: bytes | None = None) -> str:
    """One line for a record: where a dead letter came from and why it was given up (from
    the headers :func:`finops.common.consumer.dlq_headers` adds), then the value's
    :data:`SUMMARY_FIELDS`, or its start when it has none of them; a list's length first; a
    :class:`BinaryValue`'s ``key`` and size."""
    if isinstance(value, dict):
        data = value.get("data") if isinstance(value.get("data"), dict) else value
        found = {
            name: value.get(name) if name == "type" else _lookup(data, name)
            for name in SUMMARY_FIELDS
        }
        fields = [f"{name}={_field_text(name, v)}" for name, v in found.items() if v is not None]
        shown = " ".join(fields) or _compact_json(value)[:SUMMARY_JSON_CHARS]
    elif isinstance(value, list):
        shown = f"items={len(value)} {_compact_json(value)[:SUMMARY_JSON_CHARS]}"
    elif isinstance(value, BinaryValue):
        shown = f"key={printable((key or b'').decode(errors='replace'))} {value}"
    elif isinstance(value, str):
        shown = printable(value)
    else:  # a JSON scalar, or an empty record: as JSON (null, true), not as Python
        shown = _compact_json(value)
    return " ".join([*_dead_letter_parts(headers or {}), shown])


def _dead_letter_parts(headers: dict[str, str]) -> list[str]:
    parts = []
    if "x-origin-topic" in headers:
        partition = headers.get("x-origin-partition", "?")
        offset = headers.get("x-origin-offset", "?")
        parts.append(f"origin={headers['x-origin-topic']}[{partition}]@{offset}")
    if "x-service" in headers:
        by = headers["x-service"]
        if headers.get("x-instance"):
            by = f"{by}@{headers['x-instance']}"
        parts.append(f"by={printable(by)}")
    if "x-error" in headers:
        error = headers["x-error"]
        if headers.get("x-error-type"):
            error = f"{headers['x-error-type']}: {error}"
        parts.append(f"error={_quoted(error)}")
    return parts


def tail(
    topic: Annotated[str, typer.Argument(metavar="TOPIC", help="Topic name, e.g. agent.cost.v1.")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the earliest offset.")
    ] = False,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="key=value on the JSON value (dotted paths, e.g. data.model=gpt-4o); the value "
            "is read as JSON when it parses (data.success=true, data.team=null, "
            "data.latency_ms=500 matches 500.0), else as text; repeatable, all must match.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print each record as JSON.")] = False,
    max_records: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many matching records.")
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout",
            callback=positive_seconds,
            help="Stop when nothing arrives for this many seconds (more than 0).",
        ),
    ] = None,
) -> None:
    """Print a topic's records as they arrive (Ctrl-C stops)."""
    wanted = [FieldFilter.parse(item) for item in filters or []]
    try:
        asyncio.run(_tail(topic, from_beginning, wanted, json_out, max_records, idle_timeout))
    except KeyboardInterrupt:
        pass


async def _tail(
    topic: str,
    from_beginning: bool,
    wanted: list[FieldFilter],
    json_out: bool,
    max_records: int | None,
    idle_timeout: float | None,
) -> None:
    from aiokafka import TopicPartition

    from finops.common.kafka import make_consumer
    from finops.common.settings import CommonSettings

    settings = CommonSettings(service_name="cli")
    consumer = make_consumer(settings, group_id=None)
    shown = 0
    try:
        await consumer.start()  # inside: a consumer that failed to start is stopped too
        tps = await _assign_topic(consumer, topic)
        start = {tp: 0 for tp in tps}
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            start = await _seek_to_end_now(
                consumer, tps, probe=settings.kafka_end_offset_in_last_batch
            )
        last = time.monotonic()
        while max_records is None or shown < max_records:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            if not batch:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    break
                continue
            last = time.monotonic()
            for r in (r for records in batch.values() for r in records):
                if r.offset < start.get(TopicPartition(r.topic, r.partition), 0):
                    continue  # in the log before the tail began
                value = _record_value(r.value)
                if not all(f.matches(value) for f in wanted):
                    continue
                shown += 1
                _print_record(r, value, json_out)
                if max_records is not None and shown >= max_records:
                    return
    finally:
        await consumer.stop()


async def _assign_topic(consumer: Any, topic: str) -> list[Any]:
    """Assign every partition of ``topic`` to ``consumer`` (after a metadata refresh if the
    topic is not known yet); :class:`CliError` (exit 2) when the broker has no such topic."""
    from aiokafka import TopicPartition

    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        raise CliError(f"no such topic: {topic} (`finops topics` lists them)", 2)
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return tps


def _record_value(raw: bytes | None) -> Any:
    """A record's value: its JSON, else its text, else (not UTF-8: compressed or other bytes)
    a :class:`BinaryValue` of its size; ``None`` when empty."""
    if not raw:
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return BinaryValue(len(raw))
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nested deeper than the parser goes: its text
        return text


def _print_record(r: Any, value: Any, json_out: bool) -> None:
    """One record: a JSON object with its place, key and headers, or one summary line. A
    record with no value at all (or zero bytes) says so: ``"empty": true`` beside its null
    value, ``(no value)`` on its line, apart from a record holding the JSON ``null``."""
    from finops.common.dead_letters import header_map

    empty = not r.value
    if json_out:
        where = {"topic": r.topic, "partition": r.partition, "offset": r.offset}
        key = (r.key or b"").decode(errors="replace")
        answer = {**where, "key": key, "headers": header_map(r.headers), "value": value}
        if isinstance(value, BinaryValue):  # its bytes are no JSON value; its size is
            answer.update(value=None, binary_bytes=value.size)
        if empty:
            answer["empty"] = True
        print(json.dumps(answer), flush=True)
    else:
        headers = header_map(r.headers)
        if empty:
            text = " ".join([*_dead_letter_parts(headers), "(no value)"])
        else:
            text = _summary(value, headers, r.key)
        where_text = escape(f"{r.topic}[{r.partition}]@{r.offset}")
        console.print(f"[dim]{where_text}[/] {escape(text)}")


async def _seek_to_end_now(
    consumer: Any, tps: list[Any], *, probe: bool, timeout_s: float = TAIL_END_PROBE_S
) -> dict[Any, int]:
    """Seek each partition to its end as of now and return those offsets.

    The broker's end offset is exact on Apache Kafka: each partition starts there, so a record
    appended since is the first one read. The local tansu broker answers the offset after the
    *first* record of the last batch, so reading from there printed the rest of that batch (old
    records) first: with ``probe`` (``kafka_end_offset_in_last_batch``, set for that broker
    only) the end is found by a fetch, which every broker answers right: the last record a
    fetch from just before the reported end returns is the last record of the log (see
    finops.common.log_position). A partition whose fetch brings nothing within ``timeout_s``
    keeps the reported end. (On Apache Kafka the probe would skip every record appended
    between the end offsets and the fetch.)
    """
    from finops.common.log_position import ends_after_last_batches

    ends: dict[Any, int] = dict(await consumer.end_offsets(tps))
    if probe:  # a partition whose fetch brings nothing keeps the reported end
        found, _ = await ends_after_last_batches(consumer, ends, timeout_s)
        ends.update(found)
    for tp, end in ends.items():
        consumer.seek(tp, end)
    return ends
