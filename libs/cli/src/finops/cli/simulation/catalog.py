"""The simulated models and task types, with where each number comes from.

Prices are not here: every call is priced with genai-prices (``finops.common.events.price_call``)
from the model's real name, as ingest prices the events.

Latency: llmperf-leaderboard measurements (ray-project/llmperf-leaderboard, Apache-2.0; the
copy in ``../shared/data/latency/summary``). llmperf measured Llama-2 models at hosting
providers, not the closed models simulated here, so each simulated model borrows the
measured profile of one (provider, size) run of comparable speed; the file is named per
model below. Time to first token and inter-token latency are log-normal with the measured
median, and sigma from the measured p90 (``sigma = ln(p90 / p50) / 1.2816``).

Quality (the probability that a call's answer is right, per task type): for ``math``,
``knowledge`` and ``chat`` the strongest model takes GPT-4's score and the small model
Mixtral-8x7B's score in the RouteLLM evaluations (``../shared/data/outcomes``: GSM8K 0.857 /
0.638, MMLU 0.806 / 0.681, MT-Bench 0.923 / 0.834, each the mean over every prompt). The mid
model's scores there, and every score of ``extract`` and ``summarize`` (easy tasks where a
small model is about as good), are assumptions, not measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: z-score of the 90th percentile of a normal distribution
Z90 = 1.2816


def _log_normal(p50: float, p90: float, z: float) -> float:
    """The log-normal value with median ``p50`` and 90th percentile ``p90`` at normal draw ``z``."""
    return p50 * math.exp(z * math.log(p90 / p50) / Z90)


@dataclass(frozen=True)
class LatencyProfile:
    """Log-normal time to first token and inter-token latency, from one llmperf run.

    Examples
    --------
    >>> p = LatencyProfile("together_70b.json", 0.635, 0.734, 0.01533, 0.01765)
    >>> round(p.latency_ms(output_tokens=100, z_ttft=0.0, z_itl=0.0))
    2168
    """

    source: str
    ttft_p50_s: float
    ttft_p90_s: float
    itl_p50_s: float
    itl_p90_s: float

    def latency_ms(self, output_tokens: int, z_ttft: float, z_itl: float) -> float:
        """End-to-end latency for ``output_tokens`` given two standard normal draws."""
        ttft = _log_normal(self.ttft_p50_s, self.ttft_p90_s, z_ttft)
        itl = _log_normal(self.itl_p50_s, self.itl_p90_s, z_itl)
        return 1000.0 * (ttft + output_tokens * itl)


@dataclass(frozen=True, eq=False)
class SimModel:
    """A model a simulated provider serves (one object per model: compared by identity)."""

    provider: str
    name: str
    context_window: int
    latency: LatencyProfile
    #: task type -> probability that an answer is right
    quality: dict[str, float]

    @property
    def arm(self) -> str:
        return f"{self.provider}/{self.name}"


@dataclass(frozen=True)
class TaskType:
    """A kind of task: its typical prompt and answer sizes.

    ``long_prompt_share`` of its prompts are documents of ``long_prompt_tokens`` tokens or more,
    beyond some models' context windows.
    """

    name: str
    input_tokens: int
    output_tokens: int
    long_prompt_share: float = 0.0
    long_prompt_tokens: int = 0


GPT_4O = SimModel(
    "openai",
    "gpt-4o",
    128_000,
    LatencyProfile("together_70b.json", 0.6353, 0.7336, 0.015328, 0.017650),
    {"math": 0.857, "knowledge": 0.806, "chat": 0.923, "extract": 0.95, "summarize": 0.92},
)
GPT_4O_MINI = SimModel(
    "openai",
    "gpt-4o-mini",
    128_000,
    LatencyProfile("fireworks_7b.json", 0.3307, 0.3588, 0.012533, 0.012994),
    {"math": 0.638, "knowledge": 0.681, "chat": 0.834, "extract": 0.94, "summarize": 0.91},
)
CLAUDE_HAIKU = SimModel(
    "anthropic",
    "claude-haiku-4-5",
    200_000,
    LatencyProfile("together_13b.json", 0.5499, 0.6572, 0.009728, 0.011237),
    {"math": 0.78, "knowledge": 0.78, "chat": 0.89, "extract": 0.94, "summarize": 0.91},
)
MODELS = (GPT_4O, GPT_4O_MINI, CLAUDE_HAIKU)
#: the baseline's choice for every task: the best model on every task type
STRONGEST = GPT_4O

TASK_TYPES = (
    TaskType("math", input_tokens=200, output_tokens=250),
    TaskType("knowledge", input_tokens=600, output_tokens=20),
    TaskType("chat", input_tokens=400, output_tokens=300),
    TaskType("extract", input_tokens=1500, output_tokens=150),
    TaskType(
        "summarize",
        input_tokens=3000,
        output_tokens=200,
        long_prompt_share=0.02,
        long_prompt_tokens=130_000,
    ),
)


def _input_usd_per_mtok(provider: str, name: str) -> float | None:
    from finops.common.events import price_call

    price = price_call(provider, name, {"input_tokens": 1_000_000, "output_tokens": 0})
    return None if price.total_usd is None else float(price.total_usd)


def _context_window(provider: str, name: str) -> int | None:
    import genai_prices.data as prices

    from finops.common.events import genai_provider_id

    found = next((p for p in prices.providers if p.id == genai_provider_id(provider)), None)
    info = found.find_model(name) if found else None
    return int(info.context_window) if info and info.context_window else None


_STAND_INS: dict[tuple[str, str], SimModel] = {}


def serving(provider: str, name: str) -> SimModel:
    """The simulated model a provider serves as ``name``: a catalog model, or a stand-in.

    The healer may fall back to a model of its own catalog (``FINOPS_FALLBACK_MODELS``), and
    the optimizer then learns that arm too. The simulation serves such a model as a stand-in:
    its real name, price (genai-prices) and context window (genai-prices), with the latency and
    quality of the catalog model closest to it in input price (an assumption: a model of the
    same price tier answers about as well). ``KeyError`` when genai-prices does not know it.

    Examples
    --------
    >>> serving("openai", "gpt-4o") is GPT_4O
    True
    >>> haiku_4_5 = serving("aws", "global.anthropic.claude-haiku-4-5-20251001-v1:0")
    >>> haiku_4_5.arm, haiku_4_5.context_window, haiku_4_5.quality is CLAUDE_HAIKU.quality
    ('aws/global.anthropic.claude-haiku-4-5-20251001-v1:0', 200000, True)
    """
    known = next((m for m in MODELS if m.provider == provider and m.name == name), None)
    if known is not None:
        return known
    key = (provider, name)
    if key not in _STAND_INS:
        price, window = _input_usd_per_mtok(provider, name), _context_window(provider, name)
        if not price or window is None:  # unknown, or free (no price tier to compare)
            raise KeyError(f"{provider}/{name}")
        tiers = {m: _input_usd_per_mtok(m.provider, m.name) or price for m in MODELS}
        tier = min(MODELS, key=lambda m: abs(math.log(price / tiers[m])))
        _STAND_INS[key] = SimModel(provider, name, window, tier.latency, tier.quality)
    return _STAND_INS[key]
