"""The committed view of the archive: what every reader reads, never half an import.

An import appends to many files (:mod:`udf.archive.importer`). Between its journal and its
ledger line some files hold its records and others do not yet, and a crash can stop it
there. Every reader (the Parquet conversion behind ``udf compute``, ``udf data info`` and
``deadletters``, ``udf data seal``, the stream source) therefore goes through
:func:`committed_view`:

1. **Recover.** Journals left by a crashed import are rolled forward first, exactly as the
   next import would do, when the import lock is free. If an import is running, it does this
   itself; on a home this process may not write to, nothing is changed.
2. **Snapshot.** Under the shared apply lock (an import holds it exclusively from writing its
   journal until removing it, so no import is half-applied while the lock is shared), list
   every data file with its *committed size*: its size on disk, or, for a file that an
   unfinished import names (one that crashed and could not be recovered in step 1), the size
   it had before that import.
3. **Read up to the committed size** (:func:`read_committed`), outside the lock. Imports only
   append after a committed size (a recovery truncates back to its journal's sizes, which are
   never smaller), so those bytes never change while they are read, whatever runs meanwhile.

An import is thus visible to a reader once its ledger line is written, in every file at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from udf.archive.layout import EXTENSION, HOUR_MS, TOPICS, ArchiveLayout
from udf.archive.ledger import Ledger
from udf.archive.locks import READ_ONLY_ERRNOS, file_lock
from udf.home import Home
from udf.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ArchiveFile:
    """One data file and how many of its bytes belong to committed imports."""

    topic: str
    hour: int  # hours since the epoch, UTC
    path: Path
    size: int  # committed bytes: read no further

    @property
    def partition(self) -> int:
        return int(self.path.stem.split("-", 1)[1])


@dataclass(frozen=True)
class ArchiveView:
    """A consistent snapshot: the committed imports and the bytes they wrote."""

    files: tuple[ArchiveFile, ...]  # by topic, hour, partition
    imports: tuple[dict[str, Any], ...]  # ledger entries of the committed imports
    hidden: tuple[dict[str, Any], ...]  # entries of unfinished imports, whose bytes are left out

    def topic_files(self, topic: str) -> list[ArchiveFile]:
        return [f for f in self.files if f.topic == topic]

    def hours(self, topic: str) -> list[tuple[int, list[ArchiveFile]]]:
        """The topic's hours that hold committed records, oldest first, with their files."""
        by_hour: dict[int, list[ArchiveFile]] = {}
        for f in self.topic_files(topic):
            by_hour.setdefault(f.hour, []).append(f)
        return sorted(by_hour.items())


def committed_view(
    home: Home,
    topics: Iterable[str] = TOPICS,
    *,
    ts_from: int | None = None,
    ts_to: int | None = None,
    recover: bool = True,
) -> ArchiveView:
    """Recover if needed, then snapshot the committed files of ``topics``.

    Only hours overlapping ``[ts_from, ts_to)`` (epoch ms; ``None``: unbounded) are listed.
    """
    layout = ArchiveLayout(home.archive)
    topics = tuple(topics)
    for topic in topics:
        layout.topic_dir(topic)  # validates the name
    if recover:
        finish_interrupted_imports(home)
    with file_lock(layout.apply_lock, shared=True) if layout.root.exists() else nullcontext():
        view = _snapshot(layout, topics, ts_from, ts_to)
    if view.hidden:
        log.warning(
            "archive.unfinished_imports", hidden=[e["import_id"] for e in view.hidden],
            action="left out of this read; the next import, or reader that may write the archive, finishes them",
        )  # fmt: skip
    return view


def finish_interrupted_imports(home: Home) -> int:
    """Roll forward imports a crash interrupted, unless an import is running or the home is
    read-only (then readers leave them out). Returns how many journals were handled."""
    layout = ArchiveLayout(home.archive)
    if not any(layout.journal.glob("*.json")):
        return 0
    from udf.archive.importer import Importer

    try:
        handled = Importer(home).recover(wait=False)
    except OSError as exc:
        if exc.errno not in READ_ONLY_ERRNOS:
            raise
        log.warning("archive.recover_skipped", reason=f"read-only: {exc.strerror}")
        return 0
    return handled or 0


def read_committed(file: ArchiveFile) -> bytes:
    """The committed bytes of ``file`` (whatever an import is appending after them)."""
    with file.path.open("rb") as fh:
        return fh.read(file.size)


def _snapshot(
    layout: ArchiveLayout, topics: tuple[str, ...], ts_from: int | None, ts_to: int | None
) -> ArchiveView:
    imports = tuple(Ledger(layout.ledger).entries())
    done = {entry["id"] for entry in imports}
    caps: dict[Path, int] = {}
    hidden = []
    for journal in sorted(layout.journal.glob("*.json")):
        spec = orjson.loads(journal.read_bytes())  # written by rename: never torn
        entry = spec["entry"]
        if entry["import_id"] in done:
            continue  # applied in full; only its clean-up was interrupted
        hidden.append(entry)
        topic_dir = layout.topic_dir(entry["topic"])
        for target in spec["targets"]:
            path = topic_dir / target["rel"]
            caps[path] = min(caps.get(path, target["size_before"]), target["size_before"])
    files = []
    for topic in topics:
        for hour, hour_dir in _hour_dirs(layout, topic, ts_from, ts_to):
            for path in hour_dir.glob(f"part-*.{EXTENSION}"):
                try:
                    size = path.stat().st_size
                except FileNotFoundError:  # rolled back between the listing and the stat
                    continue
                size = min(size, caps.get(path, size))
                if size:
                    files.append(ArchiveFile(topic, hour, path, size))
    files.sort(key=lambda f: (TOPICS.index(f.topic), f.hour, f.partition))
    return ArchiveView(tuple(files), imports, tuple(hidden))


def _hour_dirs(
    layout: ArchiveLayout, topic: str, ts_from: int | None, ts_to: int | None
) -> list[tuple[int, Path]]:
    found = []
    for day in sorted(layout.topic_dir(topic).glob("dt=*")):
        for hour_dir in sorted(day.glob("hour=*")):
            try:
                start = datetime.strptime(f"{day.name[3:]} {hour_dir.name[5:]}", "%Y-%m-%d %H")
            except ValueError:
                log.warning("archive.foreign_folder", path=str(hour_dir))
                continue
            hour = int(start.replace(tzinfo=UTC).timestamp()) // 3600
            if ts_from is not None and (hour + 1) * HOUR_MS <= ts_from:
                continue
            if ts_to is not None and hour * HOUR_MS >= ts_to:
                continue
            found.append((hour, hour_dir))
    return found
