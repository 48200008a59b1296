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
    "claude-3-5-haiku-latest",
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


def model_named(name: str) -> SimModel:
    """The simulated model called ``name`` (``KeyError`` if none is)."""
    for model in MODELS:
        if model.name == name:
            return model
    raise KeyError(name)
