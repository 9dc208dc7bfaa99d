"""The archive: the bounded log both engines read (the contract §1).

``<home>/archive/<topic>/dt=YYYY-MM-DD/hour=HH/part-<partition>.jsonl``, partitioned by
Kafka's default partitioner on ``user_id`` so a file holds what one live partition held
in that hour, records in arrival order. ``records`` validates input lines, ``layout``
knows the paths and the partitioner, ``importer`` appends files atomically with a
journal and a ledger of what was imported, ``view`` is what every reader reads (committed
imports only, never half of one), ``locks`` coordinates them, ``inventory`` summarises
what is there and ``seal`` closes hours.
"""

from udf.archive.layout import TOPICS, ArchiveLayout

__all__ = ["TOPICS", "ArchiveLayout"]
