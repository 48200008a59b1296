"""A seeded simulation of a fleet of LLM agents, their providers and the providers' faults.

Pure code (no I/O): ``finops simulate`` (:mod:`finops.cli.simulate`) drives it against a
running stack. Its parts:

- :mod:`.catalog`: the simulated models (real names priced with genai-prices, latency from
  llmperf measurements, quality per task type, context window) and task types.
- :mod:`.faults`: the fault schedule (rate-limit storm, a provider down for a period, malformed
  output, refusals, a model's quality drifting mid-run; context overflows come from the tasks).
- :mod:`.providers`: one attempt of a call against a simulated provider, in simulated time.
- :mod:`.strategies`: how an agent calls a provider and reacts to errors (:class:`NaiveRetries`,
  the baseline, and :class:`Healing`, an offline stand-in for the healer's rules), behind one
  :class:`CallStrategy` interface.
- :mod:`.attempts`: one task's attempts as the agent's LLM call for the SDK's ``call()``, on a
  simulated clock.
- :mod:`.fleet`: the seeded list of tasks the fleet works through.
- :mod:`.tally`: what a policy's run cost and earned, and the comparison of two runs.
"""
