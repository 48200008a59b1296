"""The one identity of an arm, used by the engine, the backtest, off-policy evaluation and
error attribution.

An *arm* is one way of serving a request: a model at a provider with a configuration. Its
identity, :class:`Arm`, names the configuration by a short stable key (:func:`config_key`);
tables, checkpoints and recommendations write it as ``"model|provider|config"``
(:attr:`Arm.key`). :class:`ArmSpec` is the routable option itself: the identity's model and
provider with the full configuration an agent needs to make the call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

__all__ = ["DEFAULT_CONFIG_KEY", "Arm", "ArmSpec", "config_key"]

DEFAULT_CONFIG_KEY = "default"
_SEP = "|"


def config_key(config: Mapping[str, Any] | None) -> str:
    """A short stable id for a model configuration (``default`` when there is none).

    Examples
    --------
    >>> config_key(None)
    'default'
    >>> config_key({"temperature": None})
    'default'
    >>> config_key({"temperature": 0.2}) == config_key({"temperature": 0.2})
    True
    """
    relevant = {k: v for k, v in (config or {}).items() if v is not None}
    if not relevant:
        return DEFAULT_CONFIG_KEY
    text = json.dumps(relevant, sort_keys=True, default=str).encode()
    return hashlib.blake2b(text, digest_size=5).hexdigest()


@dataclass(frozen=True)
class Arm:
    """Identity of an arm: a model served by a provider with a configuration key.

    Examples
    --------
    >>> arm = Arm("gpt-4o", "openai", "temp0")
    >>> arm.key
    'gpt-4o|openai|temp0'
    >>> Arm.parse("gpt-4o|openai|temp0") == arm
    True
    >>> Arm.parse("llama-3-8b")
    Arm(model='llama-3-8b', provider='default', config='default')
    >>> Arm.of_call({"model": "m", "provider": "p", "config": None}).key
    'm|p|default'
    >>> arm.serves("gpt-4o", "openai"), arm.serves("gpt-4o", "azure")
    (True, False)
    """

    model: str
    provider: str = "default"
    config: str = DEFAULT_CONFIG_KEY

    @property
    def key(self) -> str:
        """How tables, checkpoints and recommendations write the arm."""
        return f"{self.model}{_SEP}{self.provider}{_SEP}{self.config}"

    @classmethod
    def parse(cls, key: str) -> Arm:
        parts = key.split(_SEP)
        if len(parts) == 1:
            return cls(parts[0])
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        return cls(parts[0], parts[1], _SEP.join(parts[2:]))

    @classmethod
    def of_call(cls, data: Mapping[str, Any]) -> Arm:
        """The arm a cost event's ``data`` (as JSON) reports the call was made with."""
        return cls(str(data["model"]), str(data["provider"]), config_key(data.get("config")))

    def serves(self, model: str, provider: str) -> bool:
        """Whether this arm is ``model`` at ``provider``, whatever its configuration."""
        return self.model == model and self.provider == provider


@dataclass(frozen=True)
class ArmSpec:
    """One routable option: a model at a provider with its full configuration.

    Examples
    --------
    >>> spec = ArmSpec("gpt-4o", "openai")
    >>> spec.arm
    Arm(model='gpt-4o', provider='openai', config='default')
    >>> spec.arm_id
    'gpt-4o|openai|default'
    """

    model: str
    provider: str
    config: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def arm(self) -> Arm:
        # cached: error attribution asks every known arm of a task for its identity
        return Arm(self.model, self.provider, config_key(self.config))

    @property
    def arm_id(self) -> str:
        return self.arm.key

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm_id, **asdict(self)}
