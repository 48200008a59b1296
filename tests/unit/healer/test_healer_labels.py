"""Label input checks and the sync that teaches every stored label exactly once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from finops.common.api_errors import http_answer
from finops.common.provider_errors.taxonomy import ErrorKind, ProviderError
from finops.healer.adapters.labels import LabelSync, NewLabel, StoredLabel
from finops.healer.api.labels import MAX_LABELS, LabelRejected, parse_labels
from finops.healer.domain.classify import ErrorClassifier

K = ErrorKind


class MemoryStore:
    def __init__(self) -> None:
        self.rows: list[StoredLabel] = []
        self.reads = 0

    async def add(self, labels: Sequence[NewLabel], created_by: str) -> list[int]:
        ids = []
        for label in labels:
            self.rows.append(StoredLabel(len(self.rows) + 1, label.message, label.kind.value))
            ids.append(len(self.rows))
        return ids

    async def after(self, last_id: int, limit: int) -> list[StoredLabel]:
        self.reads += 1
        return [row for row in self.rows if row.id > last_id][:limit]


def rejected(body: Any) -> LabelRejected:
    with pytest.raises(LabelRejected) as info:
        parse_labels(body)
    return info.value


def test_one_label_or_a_list_is_accepted() -> None:
    one = parse_labels({"message": "  gateway ate it  ", "kind": "server_error", "status": 502})
    assert one == [NewLabel("gateway ate it", K.SERVER_ERROR, None, 502)]
    many = parse_labels([{"message": "a b", "kind": "timeout", "provider": "x"}] * 3)
    assert many == [NewLabel("a b", K.TIMEOUT, "x", None)] * 3


@pytest.mark.parametrize(
    ("label", "code", "field"),
    [
        ({"message": "m", "kind": "meltdown"}, "unknown_kind", "kind"),
        ({"message": "m", "kind": "unknown"}, "unknown_kind", "kind"),
        ({"message": "m"}, "unknown_kind", "kind"),
        ({"message": "   ", "kind": "auth"}, "empty_message", "message"),
        ({"message": 5, "kind": "auth"}, "empty_message", "message"),
        ({"message": "x" * 2001, "kind": "auth"}, "message_too_long", "message"),
        ({"message": "a\x00b", "kind": "auth"}, "invalid_text", "message"),
        ({"message": "m", "kind": "auth", "provider": "x\x00"}, "invalid_provider", "provider"),
        ({"message": "m", "kind": "auth", "provider": ""}, "invalid_provider", "provider"),
        ({"message": "m", "kind": "auth", "status": 99}, "invalid_status", "status"),
        ({"message": "m", "kind": "auth", "status": "429"}, "invalid_status", "status"),
        ({"message": "m", "kind": "auth", "colour": "red"}, "unknown_field", "colour"),
        ("just text", "invalid_label", ""),
    ],
)
def test_each_bad_label_gets_its_code(label: Any, code: str, field: str) -> None:
    error = rejected(label)
    assert (error.code, http_answer(error).status, error.details) == (
        code,
        422,
        [{"index": 0, "field": field, "code": code, "message": error.details[0]["message"]}],
    )


def test_every_problem_of_a_list_is_reported_with_its_index() -> None:
    error = rejected(
        [{"message": "ok", "kind": "auth"}, {"message": "", "kind": "auth"}, {"message": "m"}]
    )
    assert error.code == "invalid_labels"
    assert [(d["index"], d["code"]) for d in error.details] == [
        (1, "empty_message"),
        (2, "unknown_kind"),
    ]


def test_an_empty_or_oversized_list_is_refused() -> None:
    assert rejected([]).code == "no_labels"
    assert rejected([{"message": "m", "kind": "auth"}] * (MAX_LABELS + 1)).code == (
        "too_many_labels"
    )


async def test_sync_teaches_each_stored_label_once_in_order() -> None:
    store = MemoryStore()
    classifier = ErrorClassifier()
    sync = LabelSync(store, classifier)
    await store.add([NewLabel("the widget shard melted", K.OVERLOADED)], "op")
    assert await sync.catch_up() == 1
    await sync.add([NewLabel("the widget shard melted", K.SERVER_ERROR)], "op")
    assert await sync.catch_up() == 0
    assert (sync.last_id, classifier.text.labels_learned) == (2, 2)
    verdict = classifier.classify(ProviderError(message="The widget shard melted", status=503))
    assert (verdict.kind, verdict.rule) == (K.SERVER_ERROR, "classifier")


async def test_a_label_of_a_kind_a_newer_version_stored_is_passed_and_the_next_learned() -> None:
    """A rolling upgrade (or a downgrade) leaves a label whose kind this version does not
    know: the sync passes it (it stopped the healer at start-up before) and learns on."""
    store = MemoryStore()
    store.rows.append(StoredLabel(1, "the quantum tunnel collapsed", "quantum_failure"))
    await store.add([NewLabel("the widget shard melted", K.OVERLOADED)], "op")
    sync = LabelSync(store, ErrorClassifier())
    assert await sync.catch_up() == 2
    assert (sync.last_id, sync.classifier.text.labels_learned) == (2, 1)
    verdict = sync.classifier.classify(ProviderError(message="The widget shard melted"))
    assert verdict.kind == K.OVERLOADED


async def test_concurrent_catch_ups_learn_nothing_twice() -> None:
    store = MemoryStore()
    await store.add([NewLabel(f"sprocket {i} wobble", K.TIMEOUT) for i in range(50)], "op")
    sync = LabelSync(store, ErrorClassifier())
    counts = await asyncio.gather(*(sync.catch_up() for _ in range(5)))
    assert sorted(counts) == [0, 0, 0, 0, 50]
    assert sync.classifier.text.labels_learned == 50


async def test_the_refresh_loop_learns_new_rows_and_stops_on_request() -> None:
    store = MemoryStore()
    sync = LabelSync(store, ErrorClassifier())
    stop = asyncio.Event()
    runner = asyncio.create_task(sync.run(stop, interval_s=0.01))
    await store.add([NewLabel("flux capacitor desync", K.NETWORK)], "op")
    async with asyncio.timeout(5):
        while sync.last_id < 1:
            await asyncio.sleep(0.01)
    stop.set()
    async with asyncio.timeout(5):
        await runner
    assert sync.classifier.text.labels_learned == 1


def test_every_code_the_checks_send_is_declared_in_the_openapi_answers() -> None:
    from finops.healer.api.labels import ERRORS, TEACHABLE_KINDS

    sent = {
        rejected(body).code
        for body in (
            {"message": "m", "kind": "meltdown"},
            {"message": "", "kind": "auth"},
            {"message": "x" * 2001, "kind": "auth"},
            {"message": "\x00", "kind": "auth"},
            {"message": "m", "kind": "auth", "provider": ""},
            {"message": "m", "kind": "auth", "status": 1},
            {"message": "m", "kind": "auth", "x": 1},
            [1],
            [],
            [{"message": "m", "kind": "auth"}] * (MAX_LABELS + 1),
            [{"message": ""}],
        )
    }
    declared = {error.code for error in ERRORS if error.status == 422}
    assert sent | {"validation_error"} == declared
    assert "unknown" not in TEACHABLE_KINDS and len(TEACHABLE_KINDS) == len(ErrorKind) - 1


class FailingStore(MemoryStore):
    """A label store whose reads fail with ``error`` until it is None."""

    def __init__(self, error: Exception | None) -> None:
        super().__init__()
        self.error = error
        self.reads = 0
        self.read_twice = asyncio.Event()

    async def after(self, last_id: int, limit: int) -> list[StoredLabel]:
        self.reads += 1
        if self.reads >= 2:
            self.read_twice.set()
        if self.error is not None:
            raise self.error
        return await super().after(last_id, limit)


async def test_the_refresh_loop_retries_postgresql_away_and_ends_on_anything_else() -> None:
    """A connection refused is retried at the next interval; an error a retry cannot cure (the
    table gone after `finops db downgrade`) ends the loop, so the process is started again as
    every other loop of the service does, instead of logging it every interval for ever."""
    store = FailingStore(ConnectionRefusedError("PostgreSQL is away"))
    sync = LabelSync(store, ErrorClassifier())
    stop = asyncio.Event()
    runner = asyncio.create_task(sync.run(stop, interval_s=0.01))
    async with asyncio.timeout(5):
        await store.read_twice.wait()  # failed once and tried again
    assert not runner.done()
    store.error = asyncpg.UndefinedTableError('relation "healer_error_labels" does not exist')
    async with asyncio.timeout(5):
        with pytest.raises(asyncpg.UndefinedTableError):
            await runner
