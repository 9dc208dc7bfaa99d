"""The archive half of the unified source: the feed, one folder per partition, with offsets.

:class:`PartitionFeed` is the :class:`~streaming.feed.Feed` (rounds of committed archive
bytes copied into immutable files, crash-safe by the round index) with two additions:

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streaming.feed import Chunk, Feed, Round, _count_lines, _hour_start, _pack, _write_atomic
from udf.archive.layout import DEFAULT_PARTITIONS, EXTENSION, HOUR_MS, TOPICS, ArchiveLayout
from udf.archive.view import committed_view
from udf.home import Home

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

    def recover(self) -> None:
        committed = {name for r in self.rounds() for name in r.files}
        for topic in self.topics:
            for hidden in self.topic_dir(topic).glob("p=*/.r*.tmp"):
                name = f"{topic}/{hidden.parent.name}/{hidden.name[1:-4]}"
                if name in committed:
                    hidden.replace(self.root / name)
                else:
                    hidden.unlink()

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

    def publish(  # type: ignore[override]
        self, limit: int | None = None, until: int | None = None, timestamp_field: str = "ts"
    ) -> Round | None:
        """Like :meth:`Feed.publish`, one file group per partition, with the offsets covered.

        With ``limit`` (a paced replay, :mod:`streaming.pacing`) the round holds at most that
        many records, the oldest hours first; with ``until`` (an aligned replay,
        :mod:`streaming.source.slices`) only records before that time (epoch ms, read from
        ``timestamp_field``). Either way the round claims no Kafka offsets until it has them all.
        """
        view = committed_view(Home(self.archive.parent), self.topics)
        done = self.offsets()
        newest = max((_hour_start(rel) for _, rel in done), default=None)
        chunks = []
        for f in view.files:
            rel = str(f.path.relative_to(self.topic_dir_in_archive(f.topic)))
            start = done.get((f.topic, rel), 0)
            if f.size > start:
                chunks.append(Chunk(f.topic, rel, start, f.size))
        kafka = _kafka_offsets(view.imports, self.topics)
        if limit is not None or until is not None:
            from streaming.pacing import take_lines
            from streaming.source.slices import take_until

            taken = chunks
            if until is not None:
                taken = take_until(self.archive, taken, until, timestamp_field)
            if limit is not None:
                taken = take_lines(self.archive, taken, limit)[0]
            if sum(c.end - c.start for c in taken) < sum(c.end - c.start for c in chunks):
                kafka = self.handover()  # only a round that holds everything hands over
            chunks = taken
        if not chunks and not _grew(kafka, self.handover()):
            return None
        number = max((r.number for r in self.rounds()), default=0) + 1
        late: dict[str, int] = {}
        for c in chunks:
            if newest is not None and _hour_start(c.rel) + HOUR_MS + self.lateness_ms <= newest:
                late[c.topic] = late.get(c.topic, 0) + self._lines(c)
        files: list[str] = []
        lines: dict[str, int] = {}
        for topic in self.topics:
            ours = [c for c in chunks if c.topic == topic]
            for p in sorted({partition_of(c.rel) for c in ours}):
                mine = [c for c in ours if partition_of(c.rel) == p]  # hour order: arrival order
                for i, group in enumerate(_pack(mine)):
                    name = f"{topic}/p={p}/r{number:08d}-{i:04d}.{EXTENSION}"
                    hidden = self.root / topic / f"p={p}" / f".{Path(name).name}.tmp"
                    hidden.parent.mkdir(parents=True, exist_ok=True)
                    self._copy(group, hidden)
                    if self.count_lines:
                        lines[topic] = lines.get(topic, 0) + _count_lines(hidden)
                    files.append(name)
        index = {
            "round": number,
            "published_at": datetime.now(UTC).isoformat(),
            "chunks": [c.__dict__ for c in chunks],
            "files": files,
            "late": late,
            "lines": lines,
            "kafka": kafka,
            "until": until,
        }
        _write_atomic(self.rounds_dir / f"r{number:08d}.json", json.dumps(index).encode())
        self.recover()
        return Round(number, tuple(chunks), tuple(files), late, lines)

    def topic_dir_in_archive(self, topic: str) -> Path:
        return ArchiveLayout(self.archive).topic_dir(topic)


def _kafka_offsets(imports: Sequence[dict[str, Any]], topics: Sequence[str]) -> dict[str, Offsets]:
    out: dict[str, Offsets] = {}
    for entry in imports:
        kafka = entry.get("kafka")
        if not kafka or entry["topic"] not in topics:
            continue
        done = out.setdefault(entry["topic"], {}).setdefault(kafka["topic"], {})
        for p, (_, end) in kafka["offsets"].items():
            done[int(p)] = max(done.get(int(p), 0), end)
    return {t: {k: {int(p): o for p, o in v.items()} for k, v in by.items()} for t, by in out.items()}


def _grew(now: dict[str, Offsets], before: dict[str, Offsets]) -> bool:
    return any(o > before.get(t, {}).get(k, {}).get(p, 0)
               for t, by in now.items() for k, v in by.items() for p, o in v.items())  # fmt: skip
