"""Pricing: equal to genai-prices' own numbers, cache discounts applied, never raises."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import calc_price, extract_usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice

from finops.common.events import (
    PriceResult,
    Usage,
    apply_pricing,
    error_event,
    genai_provider_id,
    llm_call_event,
    parse_event,
    price_call,
    price_data_version,
    to_genai_usage,
)
from finops.common.events.pricing import _genai_values, _Plan

WHEN = datetime(2025, 7, 1, 12, tzinfo=UTC)
VERSION = f"genai-prices-{genai_prices.__version__}"

ANTHROPIC_USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 18000,
    "output_tokens": 500,
    "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
}
OPENAI_CHAT_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0},
}
OPENAI_RESPONSES_USAGE = {
    "input_tokens": 5120,
    "input_tokens_details": {"cached_tokens": 4096},
    "output_tokens": 812,
    "output_tokens_details": {"reasoning_tokens": 640},
    "total_tokens": 5932,
}


def genai_total(provider: str, model: str, body: dict[str, Any], flavor: str) -> float:
    """What genai-prices computes itself from the provider's raw response."""
    extracted = extract_usage(
        {"model": model, "usage": body}, provider_id=provider, api_flavor=flavor
    )
    return float(extracted.calc_price(genai_request_timestamp=WHEN).total_price)


@pytest.mark.parametrize(
    ("provider", "model", "body", "flavor", "mtok_in", "mtok_out"),
    [
        ("anthropic", "claude-sonnet-4-20250514", ANTHROPIC_USAGE, "default", 3, 15),
        ("anthropic", "claude-3-5-sonnet-20241022", ANTHROPIC_USAGE, "default", 3, 15),
        ("openai", "gpt-4o", OPENAI_CHAT_USAGE, "chat", 2.5, 10),
        ("openai", "o3-mini", OPENAI_CHAT_USAGE, "chat", 1.1, 4.4),
        ("openai", "o3-mini", OPENAI_RESPONSES_USAGE, "responses", 1.1, 4.4),
    ],
)
def test_raw_usage_priced_like_genai_prices(
    provider: str, model: str, body: dict[str, Any], flavor: str, mtok_in: float, mtok_out: float
) -> None:
    usage = Usage.model_validate(body)
    res = price_call(provider, model, usage, WHEN)
    assert res.cost_source == "computed"
    assert res.price_version == VERSION
    # equal to genai-prices' own extraction + calculation from the raw body ...
    assert res.total_usd == genai_total(provider, model, body, flavor)
    # ... and to calc_price on the same usage
    direct = calc_price(
        to_genai_usage(usage), model, provider_id=provider, genai_request_timestamp=WHEN
    )
    assert res.total_usd == float(direct.total_price)
    assert res.input_usd == float(direct.input_price)
    assert res.output_usd == float(direct.output_price)
    assert res.input_usd + res.output_usd == pytest.approx(res.total_usd)
    # cached tokens are really discounted: naive all-input-at-full-price is more expensive
    naive = (usage.input_tokens * mtok_in + usage.output_tokens * mtok_out) / 1e6
    assert res.total_usd < naive - 1e-9


def test_anthropic_exact_numbers() -> None:
    res = price_call(
        "anthropic", "claude-sonnet-4-20250514", Usage.model_validate(ANTHROPIC_USAGE), WHEN
    )
    # 12 uncached * $3 + 18000 cache reads * $0.30 + 2000 writes (5m) * $3.75 + 500 out * $15 /MTok
    expected = (12 * 3 + 18000 * 0.3 + 2000 * 3.75 + 500 * 15) / 1e6
    assert res.total_usd == pytest.approx(expected, abs=1e-12)
    assert res.total_usd == 0.020436
    assert res.output_usd == 0.0075
    assert res.model_id == "claude-sonnet-4-0" and res.provider_id == "anthropic"
    naive = (20012 * 3 + 500 * 15) / 1e6
    assert naive == pytest.approx(0.067536)


def test_openai_exact_numbers_with_reasoning() -> None:
    res = price_call("openai", "o3-mini", Usage.model_validate(OPENAI_CHAT_USAGE), WHEN)
    # (2006-1920) * $1.10 + 1920 * $0.55 + 300 (incl. 192 reasoning) * $4.40 per MTok
    assert res.total_usd == pytest.approx((86 * 1.1 + 1920 * 0.55 + 300 * 4.4) / 1e6, abs=1e-12)
    gpt4o = price_call("openai", "gpt-4o", Usage.model_validate(OPENAI_CHAT_USAGE), WHEN)
    assert gpt4o.total_usd == pytest.approx((86 * 2.5 + 1920 * 1.25 + 300 * 10) / 1e6, abs=1e-12)


def test_anthropic_1h_cache_writes_cost_more() -> None:
    body_5m = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 4000,
        "cache_read_input_tokens": 0,
        "output_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 4000, "ephemeral_1h_input_tokens": 0},
    }
    body_1h = {
        **body_5m,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 4000},
    }
    model = "claude-sonnet-4-20250514"
    r5 = price_call("anthropic", model, Usage.model_validate(body_5m), WHEN)
    r1 = price_call("anthropic", model, Usage.model_validate(body_1h), WHEN)
    assert r5.total_usd == genai_total("anthropic", model, body_5m, "default")
    assert r1.total_usd == genai_total("anthropic", model, body_1h, "default")
    assert r1.total_usd - r5.total_usd == pytest.approx(4000 * (6 - 3.75) / 1e6, abs=1e-12)


def test_tiered_prices_match_genai() -> None:
    small = Usage(input_tokens=150_000, output_tokens=1000)
    large = Usage(input_tokens=250_000, output_tokens=1000, cached_input_tokens=100_000)
    for u in (small, large):
        res = price_call("gemini", "gemini-2.5-pro", u, WHEN)
        direct = calc_price(
            to_genai_usage(u), "gemini-2.5-pro", provider_id="google", genai_request_timestamp=WHEN
        )
        assert res.total_usd == float(direct.total_price)
    # above 200k input tokens the whole call is billed at the higher tier
    assert price_call(
        "google", "gemini-2.5-pro", Usage(input_tokens=200_001, output_tokens=0), WHEN
    ).total_usd == (pytest.approx(200_001 * 2.5 / 1e6))


def test_time_dependent_prices() -> None:
    u = Usage(input_tokens=1_000_000, output_tokens=0)
    before = price_call("openai", "o3", u, datetime(2025, 5, 1, tzinfo=UTC))
    after = price_call("openai", "o3", u, datetime(2025, 7, 1, tzinfo=UTC))
    assert (before.total_usd, after.total_usd) == (10.0, 2.0)  # the June 2025 price cut
    naive_when = price_call("openai", "o3", u, datetime(2025, 7, 1))  # naive = UTC
    assert naive_when.total_usd == 2.0
    assert price_call("openai", "o3", u).cost_source == "computed"  # when=None -> now


def _random_usage(rng: random.Random) -> Usage:
    inp = rng.choice([0, 1, 500, 50_000, 150_000, 300_000, 1_200_000])
    cached = rng.randint(0, inp)
    write = rng.randint(0, inp - cached) if rng.random() < 0.5 else 0
    out = rng.choice([0, 1, 800, 40_000])
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cached_input_tokens=cached,
        cache_write_tokens=write,
        cache_write_1h_tokens=rng.randint(0, write) if rng.random() < 0.5 else 0,
        reasoning_tokens=rng.randint(0, out),
    )


@pytest.mark.parametrize(
    "provider_id",
    [
        "openai",
        "anthropic",
        "google",
        "aws",
        "azure",
        "mistral",
        "groq",
        "together",
        "deepseek",
        "perplexity",
    ],
)
def test_fast_path_equals_genai_for_every_model(provider_id: str) -> None:
    """The compiled plan gives exactly genai-prices' numbers for every model and price period."""
    rng = random.Random(provider_id)
    provider = next(p for p in get_snapshot().providers if p.id == provider_id)
    checked = 0
    for model in provider.models:
        price_sets = (
            [model.prices]
            if isinstance(model.prices, ModelPrice)
            else [c.prices for c in model.prices]
        )
        for mp in price_sets:
            plan = _Plan(mp)  # every bundled price compiles (else price_call falls back)
            for _ in range(4):
                u = _random_usage(rng)
                try:
                    want = mp.calc_price(to_genai_usage(u))
                except ValueError:
                    want = None
                got = plan.calc(_genai_values(u))
                if want is None:
                    assert got is None, (model.id, u)
                else:
                    assert got == (
                        want["input_price"],
                        want["output_price"],
                        want["total_price"],
                    ), (model.id, u)
                checked += 1
    assert checked > 0


def test_price_call_end_to_end_equals_calc_price_for_many_models() -> None:
    rng = random.Random(7)
    for provider_id in ("openai", "anthropic", "google"):
        provider = next(p for p in get_snapshot().providers if p.id == provider_id)
        for model in provider.models:
            u = _random_usage(rng)
            try:
                want = calc_price(
                    to_genai_usage(u),
                    model.id,
                    provider_id=provider_id,
                    genai_request_timestamp=WHEN,
                )
            except (LookupError, ValueError):
                continue
            res = price_call(provider_id, model.id, u, WHEN)
            assert res.cost_source == "computed", model.id
            assert res.total_usd == float(want.total_price), model.id
            assert res.model_id == want.model.id


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("gemini", "gemini-2.5-flash"),
        ("google", "gemini-1.5-pro-002"),
        ("vertex_ai", "gemini-2.5-flash"),
        ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("Bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
        ("azure", "gpt-4o"),
        ("azure_openai", "gpt-4o-mini"),
        ("mistral", "mistral-large-latest"),
        ("groq", "llama-3.3-70b-versatile"),
        ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("xai", "grok-3"),
        ("OpenAI", "GPT-4o-2024-08-06"),
        ("openai", "openai/gpt-4o"),
    ],
)
def test_provider_aliases_priced(provider: str, model: str) -> None:
    res = price_call(provider, model, Usage(input_tokens=1000, output_tokens=100), WHEN)
    assert res.cost_source == "computed", res
    assert res.total_usd is not None and res.total_usd > 0


def test_provider_id_mapping() -> None:
    assert genai_provider_id("gemini") == "google"
    assert genai_provider_id("Bedrock") == "aws"
    assert genai_provider_id("together_ai") == "together"
    assert genai_provider_id("fireworks-ai") == "fireworks"
    assert genai_provider_id("azure_openai") == "azure"
    assert genai_provider_id("openai") == "openai"
    assert genai_provider_id("something-new") == "something-new"


@pytest.mark.parametrize(
    ("provider", "model", "reason"),
    [
        ("openai", "gpt-does-not-exist-9", "unknown_model"),
        ("anthropic", "", "unknown_model"),
        ("my-private-gateway", "gpt-4o", "unknown_provider"),
        ("", "gpt-4o", "unknown_provider"),
    ],
)
def test_unknown_model_or_provider_is_unpriced(provider: str, model: str, reason: str) -> None:
    res = price_call(provider, model, Usage(input_tokens=10, output_tokens=5), WHEN)
    assert res == PriceResult(None, "unpriced", VERSION, reason=reason)


def test_price_data_version() -> None:
    assert price_data_version() == VERSION


# ----------------------------------------------------------------------------- apply_pricing
def _event(**data: Any) -> dict[str, Any]:
    body = {
        "agent_id": "agent-1",
        "task_type": "qa",
        "provider": "anthropic",
        "model": "claude-sonnet-4-20250514",
        "usage": ANTHROPIC_USAGE,
        "latency_ms": 1200,
        "success": True,
    }
    body.update(data)
    return llm_call_event(body, time="2025-07-01T12:00:00Z")


def test_apply_pricing_computed() -> None:
    ev = parse_event(_event(cost_source="reported", price_version="client-made-up"))
    priced = apply_pricing(ev)
    assert priced.data.cost_usd == 0.020436
    assert priced.data.cost_source == "computed"
    assert priced.data.price_version == VERSION
    assert ev.data.cost_usd is None and ev.data.cost_source == "reported"  # input untouched
    assert priced.data.usage == ev.data.usage and priced.id == ev.id


def test_apply_pricing_reported_kept() -> None:
    priced = apply_pricing(parse_event(_event(cost_usd=0.5, price_version="x")))
    assert priced.data.cost_usd == 0.5
    assert priced.data.cost_source == "reported"
    assert priced.data.price_version is None


def test_apply_pricing_unpriced() -> None:
    priced = apply_pricing(
        parse_event(_event(provider="acme-llm", model="acme-1", cost_source="computed"))
    )
    assert priced.data.cost_usd is None
    assert priced.data.cost_source == "unpriced"
    assert priced.data.price_version == VERSION


def test_apply_pricing_uses_event_time() -> None:
    ev = _event(
        provider="openai", model="o3", usage={"input_tokens": 1_000_000, "output_tokens": 0}
    )
    ev["time"] = "2025-05-01T00:00:00Z"
    assert apply_pricing(parse_event(ev)).data.cost_usd == 10.0
    ev["time"] = "2025-07-01T00:00:00Z"
    assert apply_pricing(parse_event(ev)).data.cost_usd == 2.0


def test_apply_pricing_ignores_error_events() -> None:
    ev = parse_event(
        error_event(
            {
                "agent_id": "a",
                "task_type": "qa",
                "provider": "openai",
                "model": "gpt-4o",
                "error": {"kind": "timeout", "message": "timed out"},
            },
            time="2025-07-01T12:00:00Z",
        )
    )
    assert apply_pricing(ev) is ev


def test_decimal_sanity() -> None:
    # genai-prices' totals are Decimals; ours are their float() values
    direct = calc_price(
        to_genai_usage(Usage.model_validate(ANTHROPIC_USAGE)),
        "claude-sonnet-4-20250514",
        provider_id="anthropic",
        genai_request_timestamp=WHEN,
    )
    assert direct.total_price == Decimal("0.020436")


def test_fallback_without_fast_path_gives_same_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    from finops.common.events import pricing

    usage = Usage.model_validate(ANTHROPIC_USAGE)
    fast = price_call("anthropic", "claude-sonnet-4-20250514", usage, WHEN)
    monkeypatch.setattr(pricing, "_FAST_PATH", False)
    pricing.clear_caches()
    try:
        slow = price_call("anthropic", "claude-sonnet-4-20250514", usage, WHEN)
        tiered = price_call(
            "google", "gemini-2.5-pro", Usage(input_tokens=250_000, output_tokens=9), WHEN
        )
    finally:
        pricing.clear_caches()
    assert slow == fast
    assert (
        tiered.total_usd
        == price_call(
            "google", "gemini-2.5-pro", Usage(input_tokens=250_000, output_tokens=9), WHEN
        ).total_usd
    )


def test_price_call_accepts_raw_usage_and_never_raises() -> None:
    res = price_call("anthropic", "claude-sonnet-4-20250514", ANTHROPIC_USAGE, WHEN)
    assert res.total_usd == 0.020436
    bad = price_call("openai", "gpt-4o", {"input_tokens": "x"}, WHEN)
    assert (bad.cost_source, bad.total_usd, bad.reason) == ("unpriced", None, "invalid_usage")
