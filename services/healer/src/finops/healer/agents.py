"""Faust agents of the healer: decode, call the domain, emit. Nothing else.

Until the healer's own capability lands, its agent validates what it reads; an event that
does not decode is parked on the topic's dead-letter twin (at least once, never dropped).
"""

from __future__ import annotations

import faust

from finops.common.consumer import register_validating_agent
from finops.common.events import ErrorEvent
from finops.common.topics import AGENT_ERROR


def register_agents(app: faust.App) -> None:
    register_validating_agent(app, AGENT_ERROR, ErrorEvent, "healer")
