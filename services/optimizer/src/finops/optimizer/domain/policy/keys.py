"""Names: the task family of a task type, and the one key format of per-(scope, arm) tables."""

from __future__ import annotations

__all__ = ["arm_of_key", "family_of", "scoped_key"]

#: separates the scope (task family or type) from the arm in table keys; not a valid name char
_SEP = "\x1f"


def family_of(task_type: str) -> str:
    """Task family of a task type: the part before the first ``/`` (``mmlu/x`` -> ``mmlu``)."""
    i = task_type.find("/")
    return task_type if i < 0 else task_type[:i]


def scoped_key(scope: str, arm: str) -> str:
    """Key of a per-(scope, arm) table (priors, contextual models); stored in checkpoints."""
    return scope + _SEP + arm


def arm_of_key(key: str) -> str:
    """The arm of a :func:`scoped_key`."""
    return key.split(_SEP, 1)[1]
