"""Every ``FINOPS_*`` variable some part of the platform reads: the `finops` command warns
about any other one it is given (`finops.common.settings.unknown_settings`)."""

from __future__ import annotations

import importlib
from functools import cache

#: the settings classes, one per service, the common ones and the local stack's (those
#: docs/settings.md tables)
SETTINGS_CLASSES = (
    "finops.common.settings:CommonSettings",
    "finops.common.stream_settings:StreamSettings",
    "finops.auth.settings:AuthSettings",
    "finops.ingest.settings:IngestSettings",
    "finops.optimizer.settings:OptimizerSettings",
    "finops.healer.settings:HealerSettings",
    "finops.experiments.settings:ExperimentsSettings",
    "finops.cli.infra:StackSettings",
)
#: variables read outside those classes: where the stack draws its own ports, the SDK's API
#: key, the detached supervisor's mark, and deploy/'s and the benchmarks' own
OTHER_VARIABLES = frozenset(
    {
        "FINOPS_FREE_PORTS",
        "FINOPS_API_KEY",
        "FINOPS_DETACHED",
        "FINOPS_IMAGE",
        "FINOPS_SHARED_DATA",
    }
)


@cache
def known_settings() -> frozenset[str]:
    names = set(OTHER_VARIABLES)
    for spec in SETTINGS_CLASSES:
        module, _, name = spec.partition(":")
        settings = getattr(importlib.import_module(module), name)
        prefix = settings.model_config.get("env_prefix", "")
        names.update(f"{prefix}{field}".upper() for field in settings.model_fields)
    return frozenset(names)
