"""Staging: validate one import's records and group them by target file, out of sight.

Every writer of the archive (file imports, the Kafka archiver) stages the same way: each
line is validated by :func:`~udf.archive.records.parse_for_archive`; a valid record goes
for its target file ``dt=/hour=/part-<p>.jsonl`` (hour of its ``ts``, partition of its
``user_id``, or the Kafka partition it came from), in arrival order; a corrupt one goes to
the staged dead letters with its reason and where it came from. The staging folder is
``archive/_staging/<import id>/``, which readers never see; the commit protocol
(:mod:`udf.archive.journal`) appends it to the targets.

All targets' bytes go to one staged file, ``data.bin``, as segments (offset, length) per
target in arrival order: an import touching hundreds of (hour, partition) files then costs
one staged file to sync and delete, not hundreds (each a disk flush, on some file systems
an unlink that waits for the disk too).
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np
import orjson

from udf.archive.layout import HOUR_MS, ArchiveLayout, TopicSettings, hour_label
from udf.archive.partitioner import partitions_of
from udf.archive.records import Corrupt, parse_for_archive

Where = Callable[[int], dict[str, Any]]  # where line i of a batch came from, for its dead letter


@dataclass
class ImportReport:
    """What one import contributed (or, for a duplicate file, would have): its ledger line."""

    source: str
    topic: str
    import_id: str
    sha256: str = ""
    lines: int = 0
    records: int = 0
    corrupt: int = 0
    corrupt_by_kind: dict[str, int] = field(default_factory=dict)
    files: int = 0
    first_hour: str | None = None
    last_hour: str | None = None
    # Events only: each event type with the first hour it occurs in (kept in the ledger, so
    # planning learns the archive's event types without reading the data).
    event_types: dict[str, str] = field(default_factory=dict)
    duplicate_of: str | None = None
    deadletter: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Stage:
    """The staging folder of one import; :meth:`add` batches of lines, then :meth:`close`."""

    def __init__(self, layout: ArchiveLayout, report: ImportReport, settings: TopicSettings):
        self.layout = layout
        self.report = report
        self.settings = settings
        self.dir = layout.staging / report.import_id
        self.data_path = self.dir / "data.bin"
        self.dead_path = self.dir / "deadletter.jsonl"
        self.segments: dict[
            str, list[tuple[int, int]]
        ] = {}  # target (relative) -> (offset, length)
        self.misplaced = 0  # records whose given partition is not their user's (see add)
        self._kinds: Counter[str] = Counter()
        self._hours: set[int] = set()
        self._types: dict[str, int] = {}  # event type -> first hour
        self.dir.mkdir(parents=True)
        self._data: IO[bytes] = self.data_path.open("wb")
        self._dead: IO[bytes] = self.dead_path.open("wb")

    def add(
        self,
        lines: Sequence[bytes],
        where: Where,
        *,
        partitions: Sequence[int] | None = None,
        skip_blank: bool = True,
    ) -> None:
        """Validate ``lines`` and append them to their staged target files.

        ``partitions`` (one per line) places each record in the partition it arrived in (a
        Kafka partition) instead of its user's; records where the two differ are counted in
        :attr:`misplaced`. Blank lines of a file are not records (``skip_blank``); an empty
        Kafka message is one, and corrupt.
        """
        report, topic = self.report, self.report.topic
        out: list[bytes] = []
        user_ids: list[int] = []
        hour_of: list[int] = []
        given: list[int] = []
        blank = 0
        for i, line in enumerate(lines):
            if skip_blank and (not line or line.isspace()):  # JSON ignores a trailing \r
                blank += 1
                continue
            try:
                record, archived = parse_for_archive(line, topic)
            except Corrupt as bad:
                self._kinds[bad.kind] += 1
                self._dead.write(
                    orjson.dumps(
                        {
                            "source": report.source,
                            **where(i),
                            "kind": bad.kind,
                            "reason": str(bad),
                            "raw": line.rstrip(b"\r").decode("utf-8", "replace"),
                        }
                    )
                    + b"\n"
                )
                continue
            if b"\n" in archived or b"\r" in archived:  # one record per line, whatever arrived
                archived = bytes(memoryview(orjson.dumps(record)))
            out.append(archived)
            user_ids.append(record["user_id"])
            hour_of.append(record["ts"])
            if topic == "events":
                hour = record["ts"] // HOUR_MS
                if hour < self._types.get(record["event_type"], hour + 1):
                    self._types[record["event_type"]] = hour
            if partitions is not None:
                given.append(partitions[i])
        report.lines += len(lines) - blank
        report.corrupt = sum(self._kinds.values())
        if not out:
            return
        report.records += len(out)
        n = self.settings.partitions
        parts = partitions_of(np.array(user_ids, dtype=np.int64), n)
        if partitions is not None:
            arrived = np.array(given, dtype=np.int64)
            self.misplaced += int(np.count_nonzero(arrived != parts))
            parts = arrived
        keys = np.array(hour_of, dtype=np.int64) // HOUR_MS * n + parts
        order = np.argsort(keys, kind="stable")  # stable: arrival order within a file
        bounds = np.flatnonzero(np.diff(keys[order])) + 1
        records = np.array(out, dtype=object)
        topic_dir = self.layout.topic_dir(topic)
        for idx in np.split(order, bounds):
            hour, partition = divmod(int(keys[idx[0]]), n)
            self._hours.add(hour)
            rel = str(self.layout.part_file(topic, hour, partition).relative_to(topic_dir))
            chunk = b"\n".join(records[idx]) + b"\n"
            self.segments.setdefault(rel, []).append((self._data.tell(), len(chunk)))
            self._data.write(chunk)

    def close(self) -> None:
        """Finish the staging: the staged files are closed and the report filled in."""
        self._data.close()
        self._dead.close()
        report = self.report
        report.corrupt_by_kind = dict(sorted(self._kinds.items()))
        if self._hours:
            report.first_hour = hour_label(min(self._hours))
            report.last_hour = hour_label(max(self._hours))
        report.event_types = {t: hour_label(h) for t, h in sorted(self._types.items())}
        report.files = len(self.segments)

    def discard(self) -> None:
        for fh in (self._data, self._dead):
            if not fh.closed:
                fh.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def new_import_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
