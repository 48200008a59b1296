"""The embedded local stack ``finops up`` runs: PostgreSQL, Redis, the Kafka-protocol broker
behind its gate, the object store, and the services, each a supervised process on its port."""
