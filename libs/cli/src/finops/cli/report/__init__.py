"""The HTML report of a simulation run: ``make demo`` writes it, ``finops report`` rebuilds it.

- :mod:`.model`: what a report holds (a dataclass per part), from a simulation's result.
- :mod:`.charts`: each chart drawn with matplotlib to an inline SVG string.
- :mod:`.page`: the self-contained HTML page (no network: styles and charts inline).
- :mod:`.store`: the last run's result and timeline, kept in the stack's folder.
"""
