"""The archive half of the unified source: the feed, one folder per partition, with offsets.

:class:`PartitionFeed` is the :class:`~streaming.feed.Feed` (rounds of committed archive
bytes copied into immutable files, crash-safe by the round index) with two additions, made
through its two hooks (:meth:`~streaming.feed.Feed.folder`, :meth:`~streaming.feed.Feed.index_extra`):

* **Partition-aligned.** Archive file ``part-N`` of an hour holds exactly the users of live
  partition ``N`` (:mod:`udf.archive.partitioner`), and the archiver writes Kafka partition
  ``N`` there in arrival order. A round copies each partition's new bytes into files under
  ``<topic>/p=N/``, so partition ``N`` of the archive and of the live topic reach Flink as
  the same partition (the ``p`` column), each file in arrival order.
* **Offsets covered.** The round's index records, per Kafka topic and partition, the next
  offset its bytes cover, taken from the ledger entries of the *same* committed snapshot
  (:func:`udf.archive.view.committed_view`) that gave the byte ranges. The live tail starts
  at exactly these offsets (:meth:`PartitionFeed.handover`): everything before is in a
  feed file, everything from them on is read from Kafka. No gap, no overlap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streaming.feed import Chunk, Feed
from udf.archive.layout import DEFAULT_PARTITIONS, TOPICS, ArchiveLayout
from udf.archive.view import ArchiveView

Offsets = dict[str, dict[int, int]]  # Kafka topic -> partition -> next offset


def partition_of(rel: str) -> int:
    """The partition of archive file ``dt=.../hour=../part-N.jsonl``."""
    return int(Path(rel).stem.split("-", 1)[1])


def archive_partitions(archive: Path, topic: str) -> int:
    """The topic's partition count in the archive (never creates the topic's settings)."""
    path = ArchiveLayout(archive).topic_dir(topic) / "_topic.json"
    if path.exists():
        return int(json.loads(path.read_text())["partitions"])
    return DEFAULT_PARTITIONS


class PartitionFeed(Feed):
    """``<root>/<topic>/p=N/rNNNNNNNN-NNNN.jsonl`` and ``<root>/_rounds/`` (with Kafka offsets)."""

    def __init__(
        self,
        root: Path,
        archive: Path,
        topics: Sequence[str] = TOPICS,
        lateness_ms: int = 0,
        count_lines: bool = False,
        partitions: Mapping[str, int] | None = None,
    ):
        super().__init__(root, archive, topics, lateness_ms, count_lines)
        self._partitions = dict(partitions or {})

    def partitions(self, topic: str) -> int:
        return self._partitions.get(topic) or archive_partitions(self.archive, topic)

    def prepare(self) -> None:
        # Flink's filesystem source learns a partitioned table's folders when the job starts
        for topic in self.topics:
            for p in range(self.partitions(topic)):
                (self.topic_dir(topic) / f"p={p}").mkdir(parents=True, exist_ok=True)
        super().prepare()

    def folder(self, chunk: Chunk) -> str:
        return f"{chunk.topic}/p={partition_of(chunk.rel)}"

    def handover(self) -> dict[str, Offsets]:
        """Per archive topic, the next Kafka offset of each partition not in the feed."""
        out: dict[str, Offsets] = {}
        for path in sorted(self.rounds_dir.glob("r*.json")):
            for topic, by_kafka in json.loads(path.read_bytes()).get("kafka", {}).items():
                for kafka_topic, offsets in by_kafka.items():
                    done = out.setdefault(topic, {}).setdefault(kafka_topic, {})
                    for p, end in offsets.items():
                        done[int(p)] = max(done.get(int(p), 0), end)
        return out

    def index_extra(self, view: ArchiveView, complete: bool) -> dict[str, Any]:
        """The Kafka offsets the round covers (a paced round claims none until it has them all)."""
        return {"kafka": _kafka_offsets(view.imports, self.topics) if complete else self.handover()}

    def news(self, extra: dict[str, Any]) -> bool:
        return _grew(extra["kafka"], self.handover())


def _kafka_offsets(imports: Sequence[dict[str, Any]], topics: Sequence[str]) -> dict[str, Offsets]:
    out: dict[str, Offsets] = {}
    for entry in imports:
        kafka = entry.get("kafka")
        if not kafka or entry["topic"] not in topics:
            continue
        done = out.setdefault(entry["topic"], {}).setdefault(kafka["topic"], {})
        for p, (_, end) in kafka["offsets"].items():
            done[int(p)] = max(done.get(int(p), 0), end)
    return {
        t: {k: {int(p): o for p, o in v.items()} for k, v in by.items()} for t, by in out.items()
    }


def _grew(now: dict[str, Offsets], before: dict[str, Offsets]) -> bool:
    return any(o > before.get(t, {}).get(k, {}).get(p, 0)
               for t, by in now.items() for k, v in by.items() for p, o in v.items())  # fmt: skip
