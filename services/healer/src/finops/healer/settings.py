from __future__ import annotations

from finops.common.settings import DEFAULT_PORTS
from finops.common.streams import StreamSettings

#: Models a remedy may fall back to ("provider/model"; windows and prices from genai-prices).
DEFAULT_FALLBACK_MODELS = (
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "openai/gpt-4.1",
    "openai/gpt-4.1-mini",
    "anthropic/claude-sonnet-4-5",
    "anthropic/claude-haiku-4-5",
    "google/gemini-2.5-flash",
    "google/claude-sonnet-4-5",
    "aws/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "aws/global.anthropic.claude-haiku-4-5-20251001-v1:0",
    "mistral/mistral-large-2512",
    "mistral/mistral-small-2603",
)


class HealerSettings(StreamSettings):
    service_name: str = "healer"
    port: int = DEFAULT_PORTS["healer"]
    #: How soon a label posted to another instance is learned here (seconds).
    label_refresh_interval_s: float = 5.0
    #: Models a fallback may choose ("provider/model").
    fallback_models: tuple[str, ...] = DEFAULT_FALLBACK_MODELS
    #: Where the learned effectiveness and the stats are checkpointed with their offsets.
    effectiveness_checkpoint_name: str = "healer-effectiveness"
    effectiveness_checkpoint_interval_s: float = 5.0
