"""Settings of the intermediate topics (``stream.topics`` in ``<home>/settings.yaml``).

With them the pipeline's jobs run apart, joined by Kafka topics as the seed's are::

    stream:
      topics:
        bootstrap: broker:9092
        prefix: udf-stream          # topics <prefix>.<mode>.<generation>.<stream>
        partitions: 2               # default: stream.parallelism
        replication_factor: 3       # default: the broker's
        single_writer: false        # true: one subtask writes each topic (see the docs)
        properties: {}              # more Kafka client settings (security.protocol, ...)

Without them the jobs run as one Flink pipeline. :mod:`streaming.topics` and
docs/streaming.md ("Jobs apart") explain each setting.
"""

from __future__ import annotations

import re

from pydantic import Field, PositiveInt, field_validator

from udf.config.models import EngineOptions, StrictModel

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]+")


class IntermediateTopics(StrictModel):
    """The Kafka cluster between the filter jobs and the aggregation job, and how its topics
    are made."""

    bootstrap: str
    prefix: str = "udf-stream"
    partitions: PositiveInt | None = None  # None: stream.parallelism
    replication_factor: PositiveInt | None = None  # None: the broker's default
    # One subtask of a filter job writes the events' and activations' topics (Flink's
    # ``sink.parallelism`` 1; a progress topic has one writer already, its key's), for a
    # broker that mishandles several producers appending to one partition at once (tansu
    # 0.6.0, the tests' broker: docs/streaming.md, "Jobs apart"). False: every subtask
    # writes, each to every partition. (Any other number of writers than the job's
    # parallelism would deal a subtask's records round-robin, out of their order.)
    single_writer: bool = False
    properties: EngineOptions = Field(default_factory=dict)  # more Kafka client settings

    @field_validator("prefix")
    @classmethod
    def _a_topic_name(cls, prefix: str) -> str:
        if not _TOPIC_NAME.fullmatch(prefix):
            raise ValueError("a Kafka topic name holds only letters, digits, '.', '_' and '-'")
        return prefix
