from __future__ import annotations

from pydantic import Field, model_validator

from finops.common.settings import DEFAULT_PORTS, Port
from finops.common.stream_settings import StreamSettings
from finops.common.topics import AGENT_COST, AGENT_ERROR, ALERTS, CIRCUITS, PROVIDER_OUTCOMES

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

#: The consumers' max.poll.interval (aiokafka's default, which the project keeps): the longest
#: wait for the broker (the tolerance, the acknowledgement wait, and a send blocked on a full
#: batch for up to the request timeout before the wait and after it) must stay under it.
MAX_POLL_INTERVAL_S = 300.0


class HealerSettings(StreamSettings):
    service_name: str = "healer"
    port: Port = DEFAULT_PORTS["healer"]
    faust_app_id: str = "finops-healer"  # see StreamSettings
    #: How soon a label posted to another instance is learned here (seconds).
    label_refresh_interval_s: float = Field(5.0, gt=0)

    # Circuit breakers per provider/model (see docs/breakers.md).
    breaker_window_s: float = Field(60.0, gt=0)
    breaker_min_calls: int = Field(20, ge=1)
    breaker_failure_threshold: float = Field(0.5, gt=0, le=1)
    breaker_cooldown_s: float = Field(30.0, gt=0)
    breaker_max_cooldown_s: float = Field(600.0, gt=0)
    breaker_probes_to_close: int = Field(3, ge=1)
    #: a breaker opens (and a half-open one re-opens) only if the case still holds without the
    #: calls and faults of the QUORUM - 1 agents that reported the most faults (of all but one
    #: when fewer called): one agent's faults never open it for others; a model's only caller
    #: opens it alone. 1: nothing left out, as before the quorum
    breaker_quorum: int = Field(2, ge=1)
    #: how often breaker counts are published and cooled-down breakers half-opened (seconds)
    breaker_publish_interval_s: float = Field(1.0, gt=0)
    #: how often every owned breaker is published again, changed or not, so that a state a
    #: deposed owner published late (mid-rebalance) is overwritten (seconds)
    breaker_republish_interval_s: float = Field(10.0, gt=0)
    #: consumer groups: stage 1 (errors and costs → outcomes), stage 2 (the breakers' owners)
    breaker_group: str = "finops-healer-breaker-outcomes"
    breaker_owner_group: str = "finops-healer-breakers"
    #: the owners' checkpoints, one row per outcome partition (``<name>:p<partition>``), and
    #: how often a changed one is saved (seconds)
    breaker_checkpoint_name: str = "healer-breakers"
    breaker_checkpoint_interval_s: float = Field(5.0, gt=0)
    #: how long a partition upgraded from the version without checkpoints waits for the
    #: circuits topic to be read before adopting its published breakers (then: lazily)
    breaker_adopt_wait_s: float = Field(5.0, gt=0)
    #: outcome ids each partition's breakers remember, to count a redelivered outcome once
    #: (the last three quarters of them are always remembered; they are in the checkpoint)
    breaker_dedupe_ids: int = Field(65_536, ge=1_024)
    #: provider names one instance labels ``finops_healer_breaker_provider_outcomes_total`` with,
    #: the first it sees; the calls of further providers are counted as ``__other__``
    breaker_metric_providers: int = Field(32, ge=1)
    #: how long the healer waits for a broker that does not take its records (outcomes,
    #: breaker states, alerts) before its loops end and the process restarts from its
    #: checkpoint (seconds; with the acknowledgement wait and twice the request timeout under
    #: the consumer's max.poll.interval, 300 s: stage 2 does not poll while it waits, and
    #: past it the broker would take its partitions away); /readyz is down meanwhile
    broker_outage_tolerance_s: float = Field(60.0, gt=0)
    #: how long a record may go unacknowledged before the wait counts as an outage (an
    #: idempotent producer retries it itself and never fails it) (seconds)
    broker_ack_wait_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _longest_wait_within_poll_interval(self) -> HealerSettings:
        request_timeout_s = self.kafka_request_timeout_ms / 1000
        longest = self.broker_outage_tolerance_s + self.broker_ack_wait_s + 2 * request_timeout_s
        if longest >= MAX_POLL_INTERVAL_S:
            raise ValueError(
                "FINOPS_BROKER_OUTAGE_TOLERANCE_S + FINOPS_BROKER_ACK_WAIT_S + twice"
                f" FINOPS_KAFKA_REQUEST_TIMEOUT_MS make a wait of up to {longest:g} s: it must"
                f" stay under max.poll.interval ({MAX_POLL_INTERVAL_S:g} s), as the breakers'"
                " stage 2 does not poll while it waits, and a consumer that has not polled for"
                " that long loses its partitions"
            )
        return self

    # The registry's topics; a test may point elsewhere.
    cost_topic: str = AGENT_COST.name
    error_topic: str = AGENT_ERROR.name
    outcomes_topic: str = PROVIDER_OUTCOMES.name
    circuits_topic: str = CIRCUITS.name
    alerts_topic: str = ALERTS.name
    #: Models a fallback may choose ("provider/model").
    fallback_models: tuple[str, ...] = DEFAULT_FALLBACK_MODELS
    #: The checkpoint name of the learned effectiveness and the stats (with their offsets):
    #: each instance saves under ``<name>@<writer>`` and restores the freshest of the name.
    effectiveness_checkpoint_name: str = "healer-effectiveness"
    effectiveness_checkpoint_interval_s: float = Field(5.0, gt=0)
