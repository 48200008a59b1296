"""``python -m finops.common.create_topics``: create every declared topic, then exit.

A deployment's one-shot init step (``deploy/compose.yaml`` runs it before the services): it
reads the same ``FINOPS_KAFKA_*`` settings as the services, creates each topic of the registry
that is missing with its declared partitions and configuration, with
``FINOPS_KAFKA_REPLICATION_FACTOR`` replicas, and leaves existing topics alone. On Kubernetes,
Strimzi's topic operator creates them from ``deploy/k8s/base/topics.yaml``, and each service's
init container runs ``--wait SECONDS`` instead: it creates nothing and exits 0 once every
declared topic exists, or 1 naming the missing ones when SECONDS have passed (a service that
starts before its topics exist would read nothing from them). Waiting, a broker that is not
answering yet is asked again (each time logged as ``not answering yet``), and one that never
answered ends it with ``kafka_unreachable: …`` instead of the missing topics; one that answers
and refuses the client (a TLS handshake that fails, SASL authentication that fails, ACLs that
do not let it see or create the topics) ends either mode at once with exit 1 and one line on
stderr naming the kind of problem and the ``FINOPS_KAFKA_*`` settings to check: waiting would
not mend it. Creating, a broker that does not answer ends it with exit 1 and one line naming
``FINOPS_KAFKA_BOOTSTRAP`` (``kafka_unreachable: …``); a malformed or refused setting with exit
2 and the one line a service prints for it (``error: FINOPS_KAFKA_BOOTSTRAP=kafka:abc: …``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from finops.common.logging import configure_logging
from finops.common.runner import settings_or_exit
from finops.common.settings import CommonSettings
from finops.common.topic_admin import (
    KafkaAccessRefused,
    KafkaUnreachable,
    TopicNotCreated,
    ensure_topics,
    wait_for_topics,
)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m finops.common.create_topics",
        description="Create every declared Kafka topic that is missing, or wait for them.",
    )
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="create nothing; wait up to SECONDS until every declared topic exists",
    )
    arguments = parser.parse_args(argv)
    if arguments.wait is not None and not arguments.wait > 0:
        parser.error(f"--wait must be more than 0 seconds, got {arguments.wait:g}")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    settings = settings_or_exit(lambda: CommonSettings(service_name="create-topics"))
    configure_logging(settings.service_name, settings.log_level)
    try:
        if arguments.wait is not None:
            missing = asyncio.run(wait_for_topics(settings, timeout_s=arguments.wait))
            if missing:
                print(
                    f"topics still missing after {arguments.wait:g} s: {', '.join(missing)}",
                    file=sys.stderr,
                )
                return 1
            print("every declared topic exists")
            return 0
        created = asyncio.run(ensure_topics(settings))
    except (KafkaAccessRefused, KafkaUnreachable, TopicNotCreated) as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    print(f"topics ready ({len(created)} created: {', '.join(created) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
