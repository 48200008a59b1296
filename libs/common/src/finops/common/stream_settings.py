"""The settings of a stream service, apart from the Faust app they build
(:mod:`finops.common.streams`): reading them imports no Faust (the `finops` command lists every
setting at each start)."""

from __future__ import annotations

from pydantic import Field

from finops.common.settings import CommonSettings


class StreamSettings(CommonSettings):
    """Settings of a service that runs a Faust app next to its HTTP API."""

    #: the Faust app's id, which is also its consumer group (each service sets its default):
    #: a deployment's instances share it; a second deployment on the same cluster (or a
    #: test's own) needs one of its own, or its members join the first's group with another
    #: subscription
    faust_app_id: str = Field(min_length=1)
    faust_store: str = "memory://"
    faust_topic_partitions: int = Field(3, ge=1)
    # Faust's defaults, right for Apache Kafka. The local broker makes a group join wait half
    # the session timeout, so the local stack sets 10 s / 1 s (see LOCAL_BROKER_ENV).
    faust_broker_session_timeout_s: float = Field(60.0, gt=0)
    faust_broker_heartbeat_interval_s: float = Field(3.0, gt=0)
    faust_table_standby_replicas: int = Field(0, ge=0)
