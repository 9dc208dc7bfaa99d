"""The feed: committed archive bytes, copied into files that Flink's file source can read.

Flink's file source reads whole files and never sees lines appended to a file it has read,
while the importer appends late records to the hour file they belong to (docs/archive.md).
So the stream does not read the archive in place. In *rounds*, the feed copies the bytes
each archive file gained since the last round (``os.copy_file_range``: the kernel copies,
no Python touches a line) into new, immutable feed files; the Flink source watches the
feed folder and reads each new file once.

* **Committed bytes only.** Sizes come from the archive's committed view
  (:func:`udf.archive.view.committed_view`): no import is seen half-applied, and one that
  crashed is finished first or left out.
  Every import ends with a newline, so a round never cuts a line.
* **Order.** An archive file's new bytes go to exactly one feed file of the round, in order,
  so the records of one archive file reach the de-duplication in arrival order. (Across
  rounds Flink may read feed files in any order: copies of one event imported in different
  imports keep the first one Flink reads; docs/streaming.md.)
* **Crash safety.** A round's files are written hidden (``.`` prefix: Flink's source skips
  them), then the round's index ``_rounds/rNNNNNNNN.json`` is written atomically (the commit
  point), then the files are renamed into view. :meth:`Feed.recover` finishes a committed
  round and deletes an uncommitted one, so every archive byte is fed exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from udf.archive.layout import EXTENSION, HOUR_MS, TOPICS, ArchiveLayout
from udf.archive.view import ArchiveView, committed_view
from udf.home import Home

ROUNDS = "_rounds"
FILE_BYTES = 32 << 20  # one feed file stays within one file-system block: one split


@dataclass(frozen=True)
class Chunk:
    """``[start, end)`` of one archive file, as a path relative to its topic folder."""

    topic: str
    rel: str
    start: int
    end: int


@dataclass(frozen=True)
class Round:
    number: int
    chunks: tuple[Chunk, ...]
    files: tuple[str, ...]
    late: dict[str, int]  # per topic: records appended to hours the feed had left behind
    lines: dict[str, int]  # per topic: records in the round (when counted)
    until: int | None = None  # an aligned replay's slice end (records before it only)

    @property
    def bytes(self) -> int:
        return _bytes(self.chunks)


def committed_sizes(archive: Path, topic: str) -> dict[str, int]:
    """Each data file of ``topic`` and how many of its bytes belong to committed imports.

    Read through the archive's committed view (:mod:`udf.archive.view`), as every reader
    of the archive does: never half an import, even while one runs or after one crashed.
    """
    view = committed_view(Home(archive.parent), (topic,))
    topic_dir = ArchiveLayout(archive).topic_dir(topic)
    return {str(f.path.relative_to(topic_dir)): f.size for f in view.topic_files(topic)}


class Feed:
    """The feed folder of one pipeline: ``<root>/<topic>/rNNNNNNNN-NNNN.jsonl`` and the rounds."""

    def __init__(
        self,
        root: Path,
        archive: Path,
        topics: Sequence[str] = TOPICS,
        lateness_ms: int = 0,
        count_lines: bool = False,
    ):
        self.root = root
        self.archive = archive
        self.topics = tuple(topics)
        self.lateness_ms = lateness_ms
        self.count_lines = count_lines  # needed to retire rounds (a run), not in a replay
        self.rounds_dir = root / ROUNDS

    def topic_dir(self, topic: str) -> Path:
        return self.root / topic

    def prepare(self) -> None:
        for topic in self.topics:
            self.topic_dir(topic).mkdir(parents=True, exist_ok=True)
        self.rounds_dir.mkdir(parents=True, exist_ok=True)
        self.recover()

    def rounds(self) -> list[Round]:
        out = []
        for path in sorted(self.rounds_dir.glob("r*.json")):
            data = json.loads(path.read_bytes())
            chunks = tuple(Chunk(**c) for c in data["chunks"])
            out.append(Round(data["round"], chunks, tuple(data["files"]), data.get("late", {}),
                             data.get("lines", {}), data.get("until")))  # fmt: skip
        return out

    def late(self) -> dict[str, int]:
        """Per topic, the records fed late so far (see :meth:`publish`)."""
        total: dict[str, int] = {}
        for r in self.rounds():
            for topic, n in r.late.items():
                total[topic] = total.get(topic, 0) + n
        return total

    def offsets(self) -> dict[tuple[str, str], int]:
        """How far each archive file has been fed."""
        done: dict[tuple[str, str], int] = {}
        for r in self.rounds():
            for c in r.chunks:
                done[(c.topic, c.rel)] = max(done.get((c.topic, c.rel), 0), c.end)
        return done

    def recover(self) -> None:
        """Show the files of committed rounds, delete those of a round that never committed."""
        committed = {name for r in self.rounds() for name in r.files}
        for topic in self.topics:
            for hidden in self.topic_dir(topic).rglob(".r*.tmp"):
                name = str(hidden.with_name(hidden.name[1:-4]).relative_to(self.root))
                if name in committed:
                    hidden.replace(self.root / name)
                else:
                    hidden.unlink()

    def folder(self, chunk: Chunk) -> str:
        """The feed folder (relative to the root) that receives ``chunk``'s bytes."""
        return chunk.topic

    def index_extra(self, view: ArchiveView, complete: bool) -> dict[str, Any]:
        """More fields for a round's index, from the snapshot that gave its byte ranges.

        ``complete`` is False when a paced or aligned round holds only part of the new bytes. A round
        whose chunks are empty is still published when these fields say something new
        (:meth:`news`).
        """
        return {}

    def news(self, extra: dict[str, Any]) -> bool:
        return False

    def publish(
        self, limit: int | None = None, until: int | None = None, timestamp_field: str = "ts"
    ) -> Round | None:
        """Feed every committed archive byte not fed yet as one new round (None: nothing new).

        Records appended to an hour that ended more than ``lateness_ms`` before the newest hour
        fed in an earlier round are counted as *late* (a replay's single round has none).
        With ``limit`` (a paced replay, :mod:`streaming.pacing`) the round holds at most that
        many records, the oldest hours first; with ``until`` (an aligned replay,
        :mod:`streaming.source.slices`) only records before that time (epoch ms, read from
        ``timestamp_field``).
        """
        view = committed_view(Home(self.archive.parent), self.topics)
        layout = ArchiveLayout(self.archive)
        done = self.offsets()
        newest = max((_hour_start(rel) for _, rel in done), default=None)
        chunks = []
        for f in view.files:
            rel = str(f.path.relative_to(layout.topic_dir(f.topic)))
            start = done.get((f.topic, rel), 0)
            if f.size > start:
                chunks.append(Chunk(f.topic, rel, start, f.size))
        taken = chunks
        if until is not None:
            from streaming.source.slices import take_until

            taken = take_until(self.archive, taken, until, timestamp_field)
        if limit is not None:
            from streaming.pacing import take_lines

            taken = take_lines(self.archive, taken, limit)[0]
        complete = _bytes(taken) == _bytes(chunks)
        chunks = taken
        extra = self.index_extra(view, complete)
        if not chunks and not self.news(extra):
            return None
        number = max((r.number for r in self.rounds()), default=0) + 1
        late: dict[str, int] = {}
        for c in chunks:
            if newest is not None and _hour_start(c.rel) + HOUR_MS + self.lateness_ms <= newest:
                late[c.topic] = late.get(c.topic, 0) + self._lines(c)
        files: list[str] = []
        lines: dict[str, int] = {}
        folders: dict[str, list[Chunk]] = {}
        for c in sorted(chunks, key=lambda c: (self.topics.index(c.topic), c.rel)):
            folders.setdefault(self.folder(c), []).append(c)  # hour order: arrival order
        for folder, ours in folders.items():
            for i, group in enumerate(_pack(ours)):
                name = f"{folder}/r{number:08d}-{i:04d}.{EXTENSION}"
                hidden = self.root / folder / f".{Path(name).name}.tmp"
                hidden.parent.mkdir(parents=True, exist_ok=True)
                self._copy(group, hidden)
                if self.count_lines:
                    lines[ours[0].topic] = lines.get(ours[0].topic, 0) + _count_lines(hidden)
                files.append(name)
        index = {
            "round": number,
            "published_at": datetime.now(UTC).isoformat(),
            "chunks": [c.__dict__ for c in chunks],
            "files": files,
            "late": late,
            "lines": lines,
            "until": until,
            **extra,
        }
        _write_atomic(self.rounds_dir / f"r{number:08d}.json", json.dumps(index).encode())
        self.recover()
        return Round(number, tuple(chunks), tuple(files), late, lines, until)

    def retire(self, through: int) -> int:
        """Delete the files of rounds up to ``through`` (their index stays: it holds the offsets).

        Only for rounds the pipeline has read *and* checkpointed past: a restore would need
        them otherwise (the runner decides, see ``Runner._retire``). Returns files deleted.
        """
        deleted = 0
        for r in self.rounds():
            if r.number <= through:
                for name in r.files:
                    path = self.root / name
                    if path.exists():
                        path.unlink()
                        deleted += 1
        return deleted

    def _lines(self, c: Chunk) -> int:
        with (self.archive / c.topic / c.rel).open("rb") as src:
            return os.pread(src.fileno(), c.end - c.start, c.start).count(b"\n")

    def _copy(self, chunks: Sequence[Chunk], target: Path) -> None:
        with target.open("wb") as out:
            for c in chunks:
                with (self.archive / c.topic / c.rel).open("rb") as src:
                    _copy_range(src.fileno(), out.fileno(), c.start, c.end - c.start)
            out.flush()
            os.fsync(out.fileno())

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _bytes(chunks: Sequence[Chunk]) -> int:
    return sum(c.end - c.start for c in chunks)


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as fh:
        while block := fh.read(8 << 20):
            count += block.count(b"\n")
    return count


def _hour_start(rel: str) -> int:
    """The start (epoch ms) of the hour of an archive file ``dt=YYYY-MM-DD/hour=HH/part-N``."""
    day, hour = rel.split("/")[:2]
    moment = datetime.strptime(f"{day[3:]} {hour[5:]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000


def _pack(chunks: Sequence[Chunk]) -> Iterator[list[Chunk]]:
    """Chunks in groups of about :data:`FILE_BYTES`; a chunk is never split."""
    group: list[Chunk] = []
    size = 0
    for c in chunks:
        if group and size + (c.end - c.start) > FILE_BYTES:
            yield group
            group, size = [], 0
        group.append(c)
        size += c.end - c.start
    if group:
        yield group


def _copy_range(src: int, dst: int, offset: int, count: int) -> None:
    while count > 0:
        try:
            n = os.copy_file_range(src, dst, count, offset)
        except OSError:  # a file system without it: copy through user space
            data = os.pread(src, min(count, 8 << 20), offset)
            n = os.write(dst, data)
        if n <= 0:
            raise OSError(f"archive file shrank while it was fed (at byte {offset})")
        offset += n
        count -= n


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
