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
   every data file (through ``pyarrow.fs``: the archive may be any
   :class:`~udf.location.Location`, and one that is not local has no lock) with its
   *committed size*: its size on disk, or, for a file that an
   unfinished import names (one that crashed and could not be recovered in step 1), the size
   it had before that import.
3. **Read up to the committed size** (:func:`read_committed`), outside the lock. Imports only
   append after a committed size (a recovery truncates back to its journal's sizes, which are
   never smaller), so those bytes never change while they are read, whatever runs meanwhile.

An import is thus visible to a reader once its ledger line is written, in every file at once.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from udf.archive.layout import EXTENSION, HOUR_MS, JOURNAL, LEDGER, TOPICS, ArchiveLayout
from udf.archive.ledger import parse_lines as _parse_ledger
from udf.archive.locks import READ_ONLY_ERRNOS, file_lock
from udf.home import Home
from udf.location import Location
from udf.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ArchiveFile:
    """One data file and how many of its bytes belong to committed imports."""

    topic: str
    hour: int  # hours since the epoch, UTC
    rel: str  # "<topic>/dt=YYYY-MM-DD/hour=HH/part-N.jsonl", inside the archive
    size: int  # committed bytes: read no further
    root: Location  # the archive

    @property
    def name(self) -> str:
        return posixpath.basename(self.rel)

    @property
    def partition(self) -> int:
        return int(self.name.split(".", 1)[0].split("-", 1)[1])

    @property
    def path(self) -> Path:
        """The file on the local disk (a local archive only)."""
        return self.root.local_path / self.rel

    @property
    def label(self) -> str:
        """How logs name the file: its path on a local archive, else its URI."""
        return str(self.path) if self.root.is_local else self.uri

    @property
    def uri(self) -> str:
        """The file's URI, as Spark reads it."""
        return self.root.join(self.rel).spark_uri


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
    archive: Location | None = None,
) -> ArchiveView:
    """Recover if needed, then snapshot the committed files of ``topics``.

    Only hours overlapping ``[ts_from, ts_to)`` (epoch ms; ``None``: unbounded) are listed.
    ``archive`` (default: the home's) may be any :class:`~udf.location.Location`. Only the
    home's own archive is recovered (its importer is this machine's); only a local archive
    is locked (``flock``). An archive elsewhere is read like a read-only one: an unfinished
    import's journal still hides its bytes, and nothing is changed.
    """
    root = archive or Location.of(home.archive)
    topics = tuple(topics)
    for topic in topics:
        ArchiveLayout(Path(root.path)).topic_dir(topic)  # validates the name
    own = root.is_local and root.local_path == home.archive.absolute()
    if recover and own:
        finish_interrupted_imports(home)
    lock = ArchiveLayout(root.local_path).apply_lock if root.is_local else None
    with file_lock(lock, shared=True) if lock and lock.parent.exists() else nullcontext():
        view = _snapshot(root, topics, ts_from, ts_to)
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
    fs, base = file.root.filesystem()
    with fs.open_input_file(posixpath.join(base, file.rel)) as fh:
        data: bytes = fh.read(file.size)
        return data


# "<topic>/dt=YYYY-MM-DD/hour=HH/part-N.jsonl" inside the archive
_PART = re.compile(rf"^([^/]+)/dt=([^/]*)/hour=([^/]*)/part-[0-9]+\.{EXTENSION}$")


def _snapshot(
    root: Location, topics: tuple[str, ...], ts_from: int | None, ts_to: int | None
) -> ArchiveView:
    """List the committed files through ``pyarrow.fs`` (any location, local or not)."""
    from pyarrow.fs import FileSelector, FileType

    fs, base = root.filesystem()
    imports = tuple(_parse_ledger((root.read_bytes(LEDGER) or b"").splitlines()))
    done = {entry["id"] for entry in imports}
    caps: dict[str, int] = {}  # rel -> committed size
    hidden = []
    journals = fs.get_file_info(FileSelector(posixpath.join(base, JOURNAL), allow_not_found=True))
    for journal in sorted(
        j.path for j in journals if j.type == FileType.File and j.path.endswith(".json")
    ):
        with fs.open_input_stream(journal) as stream:
            spec = orjson.loads(stream.read())  # written by rename: never torn
        entry = spec["entry"]
        if entry["import_id"] in done:
            continue  # applied in full; only its clean-up was interrupted
        hidden.append(entry)
        for target in spec["targets"]:
            rel = f"{entry['topic']}/{target['rel']}"
            caps[rel] = min(caps.get(rel, target["size_before"]), target["size_before"])
    files = []
    foreign: set[str] = set()
    for topic in topics:
        listing = fs.get_file_info(
            FileSelector(posixpath.join(base, topic), recursive=True, allow_not_found=True)
        )
        for info in listing:
            rel = posixpath.relpath(info.path, base)
            found = _PART.match(rel)
            if info.type != FileType.File or not found or found.group(1) != topic:
                continue
            hour = _hour_of(found.group(2), found.group(3))
            if hour is None:
                foreign.add(posixpath.dirname(rel))
                continue
            if ts_from is not None and (hour + 1) * HOUR_MS <= ts_from:
                continue
            if ts_to is not None and hour * HOUR_MS >= ts_to:
                continue
            size = min(info.size, caps.get(rel, info.size))
            if size:
                files.append(ArchiveFile(topic, hour, rel, size, root))
    for folder in sorted(foreign):
        log.warning("archive.foreign_folder", path=str(root.join(folder)))
    files.sort(key=lambda f: (TOPICS.index(f.topic), f.hour, f.partition))
    return ArchiveView(tuple(files), imports, tuple(hidden))


def _hour_of(day: str, hour: str) -> int | None:
    """Hours since the epoch of a ``dt=``/``hour=`` folder pair, None if it is not one."""
    try:
        start = datetime.strptime(f"{day} {hour}", "%Y-%m-%d %H")
    except ValueError:
        return None
    return int(start.replace(tzinfo=UTC).timestamp()) // 3600
