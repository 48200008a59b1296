"""Faust agents of the healer.

The healer reads ``agent.error.v1`` with several consumers (the breakers' stage 1, the
effectiveness ledger), which count a record that does not decode and go on; this agent is
the one that parks it, or an event of another type than ``agent.error``, on
``agent.error.v1.dlq`` (at least once, never dropped), so the healer
parks each such record once.
"""

from __future__ import annotations

import faust

from finops.common.dead_letters import register_validating_agent
from finops.common.topics import AGENT_ERROR


def register_agents(app: faust.App) -> None:
    register_validating_agent(app, AGENT_ERROR, "healer")
