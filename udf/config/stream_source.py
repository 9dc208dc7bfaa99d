"""Settings of the unified source (``stream.source`` in ``<home>/settings.yaml``).

::

    stream:
      source:
        live: kafka                     # archive (default) | kafka
        timestamp_field: ts             # the event time of a record, epoch ms
        out_of_orderness_seconds: 5
        kafka:
          bootstrap: broker:9092
          topics: {events: prod.events, activations: prod.activations}
        rate_limits: {events: 5000}     # records/s per topic, all partitions together
        alignment: {group: udf, max_drift_seconds: 600}

The source itself is :mod:`streaming.source`; docs/streaming.md explains each setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, model_validator

from udf.config.models import EngineOptions, StrictModel

Topic = Literal["events", "activations"]


class KafkaTail(StrictModel):
    """Where the live tail is read: the cluster and the Kafka topic of each archive topic."""

    bootstrap: str
    topics: dict[Topic, str] = Field(
        default_factory=dict
    )  # archive topic -> Kafka topic (same name)
    group: str = "udf-stream"
    properties: EngineOptions = Field(default_factory=dict)  # more Kafka client settings

    def kafka_topic(self, topic: str) -> str:
        return self.topics.get(topic, topic)  # type: ignore[call-overload]


class Alignment(StrictModel):
    """Flink watermark alignment: sources of one group pause when ahead by more than the drift."""

    group: str = "udf-source"
    max_drift_seconds: PositiveFloat = 600.0
    # how often the group's allowed watermark is announced; a source reads unaligned until
    # the first announcement, so it is short (streaming/source/alignment.py)
    update_interval_seconds: PositiveFloat = 0.1


class SourceSettings(StrictModel):
    live: Literal["archive", "kafka"] = "archive"
    timestamp_field: str = "ts"
    out_of_orderness_seconds: float = Field(default=0.0, ge=0)
    kafka: KafkaTail | None = None
    rate_limits: dict[Topic, PositiveFloat] = Field(default_factory=dict)  # records/s per topic
    alignment: Alignment | None = None
    metrics: bool = False  # count records and unreadable ones as Flink metrics (a Python call each)

    @model_validator(mode="after")
    def _kafka_needs_a_cluster(self) -> SourceSettings:
        if self.live == "kafka" and self.kafka is None:
            raise ValueError("live: kafka needs kafka: {bootstrap: ...}")
        return self
