"""The archive: the bounded log both engines read (the contract §1).

``<home>/archive/<topic>/dt=YYYY-MM-DD/hour=HH/part-<partition>.jsonl``, partitioned by
Kafka's default partitioner on ``user_id`` so a file holds what one live partition held
in that hour, records in arrival order. ``records`` validates input lines, ``layout``
knows the paths and the partitioner, ``staging`` and ``journal`` are the commit protocol
every writer uses (atomic, crash-safe, with a ``ledger`` of what was imported);
``importer`` appends files, ``kafka_archiver`` Kafka topics (``kafka_client``: routes,
client settings, lag); ``view`` is what every reader reads (committed imports only, never
half of one), ``locks`` coordinates writers and readers, ``inventory`` summarises what is
there and ``seal`` closes hours.
"""

from udf.archive.layout import TOPICS, ArchiveLayout

__all__ = ["TOPICS", "ArchiveLayout"]
