#!/bin/sh
# The image's entrypoint: one argument names what this container runs.
set -eu

usage() {
    echo "usage: finops-service auth|ingest|optimizer|healer|experiments|migrate|create-topics|wait-topics [SECONDS]|wait-schema SERVICE [SECONDS]" >&2
    echo "  a service listens on FINOPS_HOST:FINOPS_PORT (0.0.0.0:8000 in this image);" >&2
    echo "  migrate brings the database schema to head; create-topics creates every" >&2
    echo "  declared Kafka topic that is missing (FINOPS_KAFKA_REPLICATION_FACTOR replicas);" >&2
    echo "  wait-topics creates none and exits 0 once every one exists, 1 after SECONDS (300)" >&2
    echo "  or at once when the brokers refuse the client (TLS, SASL, ACLs);" >&2
    echo "  wait-schema exits 0 once SERVICE's schema is at this release's head, 1 after SECONDS." >&2
}

case "${1:-}" in
    auth | ingest | optimizer | healer | experiments)
        exec python -m "finops.$1"
        ;;
    migrate)
        exec finops db upgrade
        ;;
    create-topics)
        exec python -m finops.common.create_topics
        ;;
    wait-topics)
        exec python -m finops.common.create_topics --wait "${2:-300}"
        ;;
    wait-schema)
        [ -n "${2:-}" ] || { usage; exit 2; }
        exec finops db wait "$2" --timeout "${3:-300}"
        ;;
    *)
        usage
        [ "${1:-}" = "--help" ] && exit 0
        exit 2
        ;;
esac
