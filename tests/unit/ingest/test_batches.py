"""The ingest domain: one bad event refuses the batch; ownership; pricing stamped."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from support import llm_call, team_mismatch_detail

from finops.common.auth import Principal
from finops.common.auth.scopes import EVENTS_WRITE, EVENTS_WRITE_ANY
from finops.common.events import error_event as enveloped_error
from finops.common.events.schemas.name_text import may_hold_control
from finops.common.name_characters import REFUSED_IN_NAMES
from finops.ingest.domain import batches
from finops.ingest.domain.batches import BatchLimits, Caller
from finops.ingest.domain.errors import (
    AgentMismatch,
    BatchTooLarge,
    InvalidBatch,
    MalformedBody,
    SourceMismatch,
    TeamMismatch,
)


def caller(
    sub: str, username: str, *, write_any: bool = False, teams: frozenset[str] | None = None
) -> Caller:
    scopes = {EVENTS_WRITE, EVENTS_WRITE_ANY} if write_any else {EVENTS_WRITE}
    role = "admin" if write_any else "agent"
    return Caller.of(Principal(sub, username, role, frozenset(scopes), "jti", 0, teams=teams))


AGENT = caller("user-1", "bot")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = BatchLimits(max_events=1000, max_clock_skew_s=300.0, max_event_age_s=60 * 86400.0)


def parse_batch(body: bytes, caller: Caller, max_events: int, now: datetime = NOW):
    limits = BatchLimits(max_events, LIMITS.max_clock_skew_s, LIMITS.max_event_age_s)
    return batches.parse_batch(body, caller, limits, now)


def call(agent: str = "bot", at: datetime | str = NOW, **data) -> dict:
    data.setdefault("model", "gpt-4o")
    data.setdefault("usage", {"input_tokens": 1000, "output_tokens": 100})
    event = llm_call(agent, **data)
    event["time"] = at if isinstance(at, str) else at.isoformat()
    return event


def error_event(agent: str = "bot", **identity) -> dict:
    return enveloped_error(
        {
            **identity,
            "agent_id": agent,
            "task_type": "summarize",
            "provider": "openai",
            "model": "gpt-4o",
            "error": {"kind": "rate_limit", "status_code": 429, "message": "slow down"},
            "attempt": 1,
        },
        time=NOW,
    )


def encode(events) -> bytes:
    return json.dumps(events).encode()


def test_valid_batch_becomes_keyed_records_on_the_right_topics():
    events = [call(), error_event(), call(cost_usd=0.5)]
    records = parse_batch(encode(events), AGENT, 1000)
    assert [r.topic for r in records] == ["agent.cost.v1", "agent.error.v1", "agent.cost.v1"]
    assert {r.key for r in records} == {b"bot"}
    first, _, reported = (json.loads(r.value) for r in records)
    assert first["id"] == events[0]["id"]
    assert first["data"]["principal"] == "user-1"
    assert first["data"]["cost_source"] == "computed"
    assert first["data"]["cost_usd"] == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6)
    assert reported["data"]["cost_source"] == "reported"
    assert reported["data"]["cost_usd"] == 0.5


def test_wrapped_form_is_accepted():
    records = parse_batch(json.dumps({"events": [call()]}).encode(), AGENT, 1000)
    assert len(records) == 1


@pytest.mark.parametrize("body", [b'{"event": {}}', b'"text"', b"42", b'{"events": 1}'])
def test_json_that_is_not_a_batch_is_invalid_events_not_invalid_json(body):
    # docs/events.md: 400 only for a body that is not JSON; JSON that is no batch is 422.
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(body, AGENT, 1000)
    assert caught.value.code == "invalid_events"


def test_every_bad_index_and_field_is_listed():
    bad_tokens = call()
    bad_tokens["data"]["usage"]["input_tokens"] = -5
    wrong_type = call(latency_ms="fast")
    missing = call()
    del missing["data"]["model"]
    unknown = call()
    unknown["type"] = "agent.unknown"
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(encode([call(), bad_tokens, wrong_type, missing, unknown]), AGENT, 1000)
    details = caught.value.details
    by_index = {(d["index"], d["field"]) for d in details}
    assert (1, "data.usage.input_tokens") in by_index
    assert (2, "data.latency_ms") in by_index
    assert (3, "data.model") in by_index
    assert {d["index"] for d in details} == {1, 2, 3, 4}
    assert caught.value.code == "invalid_events"


def test_invalid_json_and_non_batches_are_refused():
    with pytest.raises(MalformedBody) as caught:
        parse_batch(b"{not json", AGENT, 1000)
    assert caught.value.details == {
        "line": 1,
        "column": 2,
        "reason": "Expecting property name enclosed in double quotes",
    }
    assert caught.value.code == "invalid_json"
    with pytest.raises(MalformedBody) as caught:
        parse_batch(b"[{}, \n {not json", AGENT, 1000)
    assert (caught.value.details["line"], caught.value.details["column"]) == (2, 3)
    with pytest.raises(InvalidBatch):
        parse_batch(b'{"event": []}', AGENT, 1000)


@pytest.mark.parametrize(
    ("body", "column"),
    [
        # the object is a level too
        (b'{"events": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 11 + 201),
        (b"[" * 10_000 + b"]" * 10_000, 202),
    ],
    ids=["wrapped", "bare"],
)
def test_json_nested_too_deeply_is_invalid_json(body: bytes, column: int):
    with pytest.raises(MalformedBody) as refused:
        parse_batch(body, AGENT, 1000)
    assert refused.value.code == "invalid_json"
    # Python's parser reads it; pydantic's, which ingest uses, stops past 200 levels
    assert refused.value.details == {
        "line": 1,
        "column": column,
        "reason": "recursion limit exceeded",
    }


def test_oversized_batch_is_refused():
    with pytest.raises(BatchTooLarge) as caught:
        parse_batch(encode([call() for _ in range(11)]), AGENT, 10)
    assert caught.value.code == "batch_too_large"


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_batch_over_the_count_is_refused_before_any_event_is_validated(monkeypatch, wrapped):
    validated = []

    def counting_validate_batch(*args, **kwargs):
        validated.append(args)
        raise AssertionError("per-event validation ran on an oversized batch")

    monkeypatch.setattr(batches, "validate_batch", counting_validate_batch)
    invalid = [{}] * 100_000
    body = json.dumps({"events": invalid} if wrapped else invalid).encode()
    with pytest.raises(BatchTooLarge) as caught:
        parse_batch(body, AGENT, 1000)
    assert validated == []
    assert caught.value.code == "batch_too_large"
    assert caught.value.message == "a batch holds at most 1000 events, got 100000"
    assert caught.value.details == {"max_events": 1000, "events": 100_000}


def test_event_times_beyond_the_clock_skew_or_the_retention_are_refused_with_the_field():
    events = [
        call(at=NOW),
        call(at=NOW + timedelta(seconds=299)),  # an agent clock a little ahead: accepted
        call(at=NOW - timedelta(days=59)),  # a late delivery within the retention: accepted
        call(at=NOW + timedelta(seconds=301)),
        call(at="9999-12-31T23:59:59Z"),
        call(at="9999-12-31T23:59:59-05:00"),  # year 10000 in UTC
        call(at=NOW - timedelta(days=61)),
        call(at="0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
    ]
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(encode(events), AGENT, 1000)
    details = caught.value.details
    assert [(d["index"], d["field"], d["type"]) for d in details] == [
        (3, "time", "time_in_future"),
        (4, "time", "time_in_future"),
        (5, "time", "time_in_future"),
        (6, "time", "time_too_old"),
        (7, "time", "time_too_old"),
    ]
    assert "300 s" in details[0]["message"]
    assert "60 days" in details[3]["message"]
    assert len(parse_batch(encode(events[:3]), AGENT, 1000)) == 3


def test_a_nul_character_in_an_event_string_is_invalid_events_naming_the_field():
    events = [call(), call(task_type="sum\x00marize"), call(model="gpt\x00-4o")]
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(encode(events), AGENT, 1000)
    assert caught.value.code == "invalid_events"
    assert [(d["index"], d["field"], d["type"]) for d in caught.value.details] == [
        (1, "data.task_type", "invalid_text"),
        (2, "data.model", "invalid_text"),
    ]


def _with_error(**fields) -> dict:
    event = error_event()
    event["data"]["error"].update(fields)
    return event


@pytest.mark.parametrize("ensure_ascii", [True, False])  # escaped, or raw DEL and C1 bytes
def test_a_control_character_in_a_name_is_invalid_events_naming_the_field(ensure_ascii):
    events = [
        call(task_type="sum\nmarize"),
        call(model="gpt-4o\x7f", provider="open\x9bai"),
        call(decision={"recommendation_id": "r\x1b[1m", "propensity": 0.5}),
        _with_error(type="rate\rlimit", provider_code="quota\x85"),
        call(config={"k\tey": 1}, features={"f\x00": 1.0}),
    ]
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(json.dumps(events, ensure_ascii=ensure_ascii).encode(), AGENT, 1000)
    assert caught.value.code == "invalid_events"
    assert [(d["index"], d["field"], d["type"]) for d in caught.value.details] == [
        (0, "data.task_type", "control_character"),
        (1, "data.model", "control_character"),
        (1, "data.provider", "control_character"),
        (2, "data.decision.recommendation_id", "control_character"),
        (3, "data.error.provider_code", "control_character"),
        (3, "data.error.type", "control_character"),
        (4, "data.features.f\x00", "invalid_text"),  # a NUL is invalid_text anywhere
        (4, "data.config.k\tey", "control_character"),
    ]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": "gpt-4o\x7f"}, "data.model"),  # DEL: one raw byte
        ({"provider": "open\x85ai"}, "data.provider"),  # C1: \xc2\x85 in UTF-8
        ({"features": {"len\x9b": 1.0}}, "data.features.len\x9b"),
        ({"task_type": "sum\u2028marize"}, "data.task_type"),  # line separator: \xe2\x80\xa8
        ({"team": "ops\u2029"}, "data.team"),  # paragraph separator
        ({"task_type": "sum\u202emarize"}, "data.task_type"),  # right-to-left override
        ({"model": "gpt-4o\u200b"}, "data.model"),  # zero-width space
        ({"features": {"\ufefflen": 1.0}}, "data.features.\ufefflen"),  # byte order mark
    ],
)
def test_a_raw_del_c1_or_line_separator_in_a_batch_with_no_backslash_is_found(changes, field):
    # the batch's only control character is raw (no JSON escape, no backslash anywhere): the
    # byte pre-check, not a \n elsewhere in the batch, must send it to the scan
    body = json.dumps([call(), call(**changes)], ensure_ascii=False).encode()
    assert b"\\" not in body
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(body, AGENT, 1000)
    assert [(d["index"], d["field"], d["type"]) for d in caught.value.details] == [
        (1, field, "control_character")
    ]


@pytest.mark.parametrize(
    ("text", "may"),
    [
        (b'{"model": "gpt-4o", "time": "2026-12-07T06:00:00+00:00"}', False),
        (b'{"name": "caf\\u00e9 \\u00a0"}', False),  # escaped, not control
        ('{"name": "caf\xe9\xa0"}'.encode(), False),  # raw U+00E9 and NBSP (\xc2\xa0)
        (b'{"a": "x\x7f"}', True),
        ('{"a": "x\x80"}'.encode(), True),
        ('{"a": "x\x9f"}'.encode(), True),
        (b'{"a": "x\\n"}', True),
        (b'{"a": "x\\u001b"}', True),
        (b'{"a": "x\\u007F"}', True),
        (b'{"a": "x\\u0085"}', True),
        (b'{"a": "x\\u00a0"}', False),
        (b'{"a": "x\\u2028"}', True),
        (b'{"a": "x\\u2029"}', True),
        (b'{"a": "x\\u2027"}', False),
        ('{"a": "x\u2028"}'.encode(), True),
        ('{"a": "x\u2029"}'.encode(), True),
        ('{"a": "x\u2026 \u20ac"}'.encode(), False),  # an ellipsis, a euro sign: \xe2\x80\xa6
        (b'{"a": "x\\"/"}', False),
        # format characters (Cf): raw (UTF-8) and escaped, in either case of hex
        ('{"a": "x\u202e"}'.encode(), True),  # right-to-left override: \xe2\x80\xae
        ('{"a": "x\u200b"}'.encode(), True),  # zero-width space
        ('{"a": "x\ufeff"}'.encode(), True),  # byte order mark: \xef\xbb\xbf
        ('{"a": "x\u00ad"}'.encode(), True),  # soft hyphen: \xc2\xad
        ('{"a": "x\U000e0041"}'.encode(), True),  # a tag character (4 bytes)
        (b'{"a": "x\\u202E"}', True),
        (b'{"a": "x\\u2066"}', True),
        (b'{"a": "x\\udb40\\udc41"}', True),  # a tag character's surrogate pair
        (b'{"a": "x\\u00e9\\u3000"}', False),  # an accent, an ideographic space
        ('{"a": "\u6771\u4eac\u3000\u00a0"}'.encode(), False),
    ],
)
def test_may_hold_control_reads_raw_and_escaped_control_characters(text, may):
    assert may_hold_control(text) is may
    assert may_hold_control(bytearray(text)) is may
    assert may_hold_control(text.decode()) is may


def test_free_text_keeps_its_control_characters():
    # an error's message, a header's value, a config's string value; and a name holding an
    # escaped backslash before an n (no line break) is a name
    message = "line 1\nline 2\t\x1b[31mred\x85"
    events = [
        _with_error(message=message, headers={"x-note": "a\tb"}),
        call(config={"system": "be brief\nand kind"}, task_type="back\\nslash"),
    ]
    records = parse_batch(encode(events), AGENT, 1000)
    assert json.loads(records[0].value)["data"]["error"]["message"] == message
    assert json.loads(records[1].value)["data"]["task_type"] == "back\\nslash"


def test_events_for_another_agent_need_write_any():
    events = [call(), call(agent="someone-else")]
    with pytest.raises(AgentMismatch) as caught:
        parse_batch(encode(events), AGENT, 1000)
    assert caught.value.details == [
        {
            "index": 1,
            "field": "data.agent_id",
            "agent_id": "someone-else",
            "message": "'someone-else' is not the caller's agent id",
        }
    ]
    admin = caller("admin", "admin", write_any=True)
    assert len(parse_batch(encode(events), admin, 1000)) == 2


def test_a_caller_bound_to_its_teams_names_only_those_in_both_event_types():
    bound = caller("user-1", "bot", teams=frozenset({"search"}))
    own = [call(team="search"), call(), error_event(team="search"), error_event()]
    assert len(parse_batch(encode(own), bound, 1000)) == 4
    foreign = [call(team="search"), call(team="finance"), error_event(team="finance")]
    with pytest.raises(TeamMismatch) as caught:
        parse_batch(encode(foreign), bound, 1000)
    assert caught.value.code == "team_mismatch"
    assert caught.value.details == [
        team_mismatch_detail(1, "finance"),
        team_mismatch_detail(2, "finance"),
    ]
    # bound to no team: only events without one
    with pytest.raises(TeamMismatch):
        parse_batch(encode([call(team="search")]), caller("user-1", "bot", teams=frozenset()), 1)


def test_an_unbound_caller_and_a_writer_for_any_agent_name_any_team():
    events = [call(team="finance"), error_event(team="ops")]
    assert len(parse_batch(encode(events), AGENT, 1000)) == 2
    admin = caller("admin", "root", write_any=True, teams=frozenset({"ops"}))
    assert len(parse_batch(encode([call(team="finance")]), admin, 1000)) == 1


def test_an_event_must_not_claim_another_source_than_its_caller():
    spoofed = call()
    spoofed["source"] = "someone-else"  # its own agent_id, but "emitted" by another agent
    with pytest.raises(SourceMismatch) as caught:
        parse_batch(encode([call(), spoofed]), AGENT, 1000)
    assert caught.value.code == "source_mismatch"
    assert caught.value.details == [{"index": 1, "field": "source", "source": "someone-else"}]
    as_user_id = call()
    as_user_id["source"] = "user-1"  # the caller's user id is the caller too
    assert len(parse_batch(encode([as_user_id]), AGENT, 1000)) == 1


def test_a_writer_for_any_agent_may_name_itself_or_that_agent_as_source():
    admin = caller("admin-id", "root", write_any=True)
    for_agent, by_admin, elsewhere = call(agent="bot"), call(agent="bot"), call(agent="bot")
    by_admin["source"] = "root"
    elsewhere["source"] = "third-party"
    assert len(parse_batch(encode([for_agent, by_admin]), admin, 1000)) == 2
    with pytest.raises(SourceMismatch):
        parse_batch(encode([elsewhere]), admin, 1000)


def test_an_event_sent_by_the_callers_user_id_is_published_under_its_username():
    by_id = call(agent="user-1")
    by_id["source"] = "user-1"
    by_name, error_by_id = call(), error_event(agent="user-1")
    records = parse_batch(encode([by_id, by_name, error_by_id]), AGENT, 1000)
    values = [json.loads(r.value) for r in records]
    assert [r.key for r in records] == [b"bot"] * 3  # the record's key is the username too
    assert [(v["data"]["agent_id"], v["source"]) for v in values] == [("bot", "bot")] * 3
    assert [v["data"]["principal"] for v in values] == ["user-1"] * 3  # who sent it: as is


def test_an_admin_writing_for_its_own_user_id_is_recorded_by_its_username_others_as_given():
    admin = caller("admin-id", "root", write_any=True)
    own, other = call(agent="admin-id"), call(agent="agent-uuid")
    own["source"], other["source"] = "admin-id", "agent-uuid"
    records = parse_batch(encode([own, other]), admin, 1000)
    values = [json.loads(r.value) for r in records]
    # another agent's user id cannot be mapped without an auth lookup: kept as given
    assert [(v["data"]["agent_id"], v["source"]) for v in values] == [
        ("root", "root"),
        ("agent-uuid", "agent-uuid"),
    ]


def test_unknown_model_is_kept_unpriced():
    records = parse_batch(encode([call(model="my-private-finetune-x")]), AGENT, 1000)
    value = json.loads(records[0].value)
    assert value["data"]["cost_source"] == "unpriced"
    assert value["data"]["cost_usd"] is None
    assert records[0].cost_source == "unpriced"


@pytest.mark.parametrize("ensure_ascii", [True, False])  # escaped, or raw UTF-8
def test_a_format_character_in_a_name_is_refused_naming_the_field_and_its_code_point(
    ensure_ascii,
):
    """A bidi override, a bidi isolate, a zero-width space or joiner, a byte order mark in a
    name passed (stored, then shown reordered or looking like another name): only control
    characters and line separators were refused."""
    events = [
        call(task_type="invoice\u202egpj.exe"),
        call(model="gpt-4o\u200b", team="\u2066ops\u2069"),
        call(experiment={"id": "exp-1", "variant": "b\u200d"}, features={"\ufefflen": 1.0}),
        call(project="p\U000e0041"),  # a tag character: a surrogate pair when escaped
        call(task_type="東京\u3000要約", model="gpt\u00a0x"),  # spaces of any script: kept
    ]
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(json.dumps(events, ensure_ascii=ensure_ascii).encode(), AGENT, 1000)
    assert caught.value.code == "invalid_events"
    details = [(d["index"], d["field"], d["type"]) for d in caught.value.details]
    assert details == [
        (0, "data.task_type", "control_character"),
        (1, "data.model", "control_character"),
        (1, "data.team", "control_character"),
        (2, "data.experiment.variant", "control_character"),
        (2, "data.features.\ufefflen", "control_character"),
        (3, "data.project", "control_character"),
    ]
    got = [d["message"].rsplit("; ", 1)[1] for d in caught.value.details]
    assert got == [
        "got U+202E (RIGHT-TO-LEFT OVERRIDE)",
        "got U+200B (ZERO WIDTH SPACE)",
        "got U+2066 (LEFT-TO-RIGHT ISOLATE)",
        "got U+200D (ZERO WIDTH JOINER)",
        "got U+FEFF (ZERO WIDTH NO-BREAK SPACE)",
        "got U+E0041 (TAG LATIN CAPITAL LETTER A)",
    ]
    assert all(d["message"].startswith("a name must not hold") for d in caught.value.details)


def test_may_hold_control_finds_every_character_names_refuse_raw_or_escaped():
    # the pre-checks are built from the rule's list: none of its characters slips past them
    refused = [c for c in map(chr, range(0x110000)) if REFUSED_IN_NAMES.match(c)]
    assert len(refused) > 200
    for char in refused:
        escaped = json.dumps({"a": f"x{char}"})  # \n, \u202e, a surrogate pair
        upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m[1].upper(), escaped)
        texts = [escaped, upper] + ([] if char < " " else [json.dumps([char], ensure_ascii=False)])
        for text in texts:  # (a raw C0 control is no JSON)
            assert may_hold_control(text.encode()), (hex(ord(char)), text)
            assert may_hold_control(text), (hex(ord(char)), text)


@pytest.mark.parametrize("ensure_ascii", [True, False])  # escaped, or raw UTF-8
def test_a_joiner_a_script_needs_is_taken_in_a_name_and_one_elsewhere_refused(ensure_ascii):
    """Persian writes a zero-width non-joiner between letters and Devanagari a joiner after a
    virama: such names were refused with the other format characters."""
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    devanagari = "\u0915\u094d\u200d\u0937"
    taken = [call(task_type=persian, team=devanagari)]
    parsed = parse_batch(json.dumps(taken, ensure_ascii=ensure_ascii).encode(), AGENT, 1000)
    assert len(parsed) == 1
    refused = [*taken, call(task_type="sum\u200cmarize")]  # between Latin letters: a lookalike
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(json.dumps(refused, ensure_ascii=ensure_ascii).encode(), AGENT, 1000)
    assert [(d["index"], d["field"]) for d in caught.value.details] == [(1, "data.task_type")]
    assert caught.value.details[0]["message"].endswith("got U+200C (ZERO WIDTH NON-JOINER)")
