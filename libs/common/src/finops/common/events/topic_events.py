"""Which event type each event topic carries, and decoding a record by it.

Ingest publishes each event type to a topic of its own
(:data:`~finops.common.topics.TOPIC_FOR_EVENT_TYPE`): ``agent.llm_call`` to ``agent.cost.v1``,
``agent.error`` to ``agent.error.v1``. Every reader of those topics decodes a record with
:meth:`EventTopics.decode`, by the type its topic carries: a valid event of the other type
(a producer that wrote it to the wrong topic) is a bad record like one that does not decode,
so each reader refuses it (parks it, or counts it where another reader of the service parks
it) and none applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from finops.common.events.schemas import ERROR, EVENT_TYPES, LLM_CALL, Event
from finops.common.topics import TOPIC_FOR_EVENT_TYPE


class WrongEventType(TypeError):
    """A valid event on a topic that carries events of another type."""


@dataclass(frozen=True)
class EventTopics:
    """The names of the two event topics (settings may rename them; tests do)."""

    cost: str = TOPIC_FOR_EVENT_TYPE[LLM_CALL]
    error: str = TOPIC_FOR_EVENT_TYPE[ERROR]

    def event_type(self, topic: str) -> str:
        """The event type ``topic`` carries; ValueError for a topic that carries no events."""
        if topic == self.cost:
            return LLM_CALL
        if topic == self.error:
            return ERROR
        raise ValueError(f"{topic} is not an event topic ({self.cost}, {self.error})")

    def decode(self, topic: str, value: bytes | str) -> Event:
        """The event of a record of ``topic``: raises what :meth:`Event.from_kafka` raises for
        a value that is no event, and :class:`WrongEventType` for an event of another type
        than the topic carries (both ValueError or TypeError)."""
        expected = self.event_type(topic)
        event = Event.from_kafka(value)
        if not isinstance(event, EVENT_TYPES[expected]):
            raise WrongEventType(
                f"{event.type} event on {topic}, which carries {expected} events only"
            )
        return event
