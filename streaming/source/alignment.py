"""Watermark alignment of the Kafka tail: the options the source sets, and why.

Flink pauses a split (a Kafka partition) whose watermark is more than ``max_drift`` ahead of
the slowest source of its alignment group (FLIP-182, FLIP-217). Measured with Flink 2.3 and
the Kafka connector 4.0.1-2.0 (tests/integration/streaming/test_source.py), Flink's defaults
let a resumed partition run far past the drift, for three reasons, each answered here:

* **The alignment buffer** (Flink 2.3, FLINK-37399): a split is checked against the oldest of
  its last ``pipeline.watermark-alignment.buffer-size`` (default 3) sampled watermarks, so it
  reads freely for three update intervals before it can be paused: 22.5 minutes of a backlog
  past a 10-minute drift even with a 20 ms interval and small fetches, 10.0 with size 0. The
  source sets the size to 0 (Flink 2.2's behaviour: the latest watermark is checked). It is
  a job-wide setting.
* **Periodic watermarks**: a split's watermark, and so the check, moves only every
  ``pipeline.auto-watermark-interval`` (200 ms); a backlog reads thousands of records in
  between (53 minutes past the drift with size 0, a 1 s update interval and otherwise
  Flink's and Kafka's defaults: this and the start below, together).
  ``scan.watermark.emit.strategy: on-event`` moves it with every record.
* **Records in flight**: a paused partition's records already fetched are still emitted: the
  batch being emitted and ``source.reader.element.queue.capacity`` (2) queued batches, each
  at most ``max.poll.records``. The source lowers ``max.poll.records`` to
  :data:`POLL_RECORDS`, so a paused partition emits at most ``3 * POLL_RECORDS`` more records.

* **The start**: a source reads unaligned until the group's first announcement (Flink starts
  it with no limit), and the group's minimum only covers the sources that have reported a
  watermark. The update interval (``alignment.update_interval_seconds``) therefore defaults
  to 0.1 s, not Flink's 1 s: with 1 s, 24 minutes of events were read past the drift before
  the first announcement arrived; with 0.1 s, none (the announcement costs one small
  message per source subtask). What no setting answers: until a topic's source has read
  its first record it reports no watermark and holds no other topic back, so a backlog
  read by a source that started first runs ahead freely (28.2 minutes past a 10-minute
  drift in one run, where the other topic's source started seconds later). Alignment holds
  once every topic of the group has read a record.

A user's ``stream.source.kafka.properties`` override the Kafka client settings.
"""

from __future__ import annotations

from udf.config.stream_source import Alignment

POLL_RECORDS = 50  # max.poll.records under alignment (Kafka's default: 500)
QUEUED_BATCHES = 2  # source.reader.element.queue.capacity, Flink's default
IN_FLIGHT_RECORDS = (QUEUED_BATCHES + 1) * POLL_RECORDS  # a paused partition's overshoot, at most

JOB_OPTIONS = {"pipeline.watermark-alignment.buffer-size": "0"}
KAFKA_PROPERTIES = {"max.poll.records": str(POLL_RECORDS)}


def kafka_alignment_options(alignment: Alignment) -> dict[str, str]:
    """The WITH options that put a Kafka table into ``alignment``'s group."""
    return {
        "scan.watermark.alignment.group": alignment.group,
        "scan.watermark.alignment.max-drift": f"{round(alignment.max_drift_seconds * 1000)}ms",
        "scan.watermark.alignment.update-interval": f"{round(alignment.update_interval_seconds * 1000)}ms",
        "scan.watermark.emit.strategy": "on-event",
    } | {f"properties.{k}": v for k, v in KAFKA_PROPERTIES.items()}
