"""``python -m finops.common.create_topics``: create every declared topic, then exit.

A deployment's one-shot init step (``deploy/compose.yaml`` runs it before the services):
it reads the same ``FINOPS_KAFKA_*`` settings as the services, creates each topic of the
registry that is missing with its declared partitions and configuration, with
``FINOPS_KAFKA_REPLICATION_FACTOR`` replicas, and leaves existing topics alone. On
Kubernetes, Strimzi's topic operator creates them from ``deploy/k8s/base/topics.yaml``.
"""

from __future__ import annotations

import asyncio

from finops.common.kafka import ensure_topics
from finops.common.logging import configure_logging
from finops.common.settings import CommonSettings


def main() -> None:
    settings = CommonSettings(service_name="create-topics")
    configure_logging(settings.service_name, settings.log_level)
    created = asyncio.run(ensure_topics(settings))
    print(f"topics ready ({len(created)} created: {', '.join(created) or 'none'})")


if __name__ == "__main__":
    main()
