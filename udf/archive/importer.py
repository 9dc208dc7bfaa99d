"""Append input files to the archive atomically, dead-lettering corrupt lines.

Each source file is one import, in three steps:

1. **Stage**: read the file in chunks (hashing its bytes), validate every line, write the
   valid records, grouped by target ``(hour, partition)`` file, and the corrupt ones with
   their reasons into ``archive/_staging/<import id>/``. Nothing visible has changed yet.
2. **Commit**: if the ledger already holds a file with the same topic and SHA-256, drop the
   staging (the import is a duplicate). Otherwise write a journal naming every target file
   and its size before the append. The journal is the commit point.
3. **Apply**: truncate each target to its recorded size (undoing a torn earlier attempt),
   append the staged bytes, fsync, move the dead letters into place, add the ledger line,
   then remove the journal and the staging.

A crash before the journal leaves only staging, which the next import removes; a crash
after it is rolled forward by the next import or reader (:meth:`Importer.recover`), so a
target file never holds half an import and a rerun never doubles one. Imports into one
archive are serialised by an exclusive lock file, and steps 2-3 hold the apply lock, which
readers share while they take their snapshot (:mod:`udf.archive.view`): no reader sees an
import half-applied.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from udf.archive.layout import HOUR_MS, ArchiveLayout, TopicSettings, hour_label
from udf.archive.ledger import Ledger
from udf.archive.locks import file_lock, fsync_dir
from udf.archive.partitioner import partitions_of
from udf.archive.records import Corrupt, parse_for_archive
from udf.errors import ArchiveError, InputError
from udf.home import Home
from udf.logging import get_logger

log = get_logger(__name__)

CHUNK_BYTES = 8 << 20
BATCH_LINES = 100_000
Progress = Callable[[int], None]


@dataclass
class FileReport:
    """What one source file contributed (or, for a duplicate, would have)."""

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


class Importer:
    def __init__(self, home: Home):
        self.home = home
        self.layout = ArchiveLayout(home.archive)
        self.ledger = Ledger(self.layout.ledger)

    def import_files(
        self,
        topic: str,
        sources: Sequence[str],
        *,
        partitions: int | None = None,
        progress: Progress | None = None,
    ) -> list[FileReport]:
        """Import each source (a path, or ``-`` for stdin) as its own atomic import."""
        self.layout.topic_dir(topic)  # validates the topic name
        for source in sources:
            if source != "-" and os.path.isdir(source):
                raise InputError(
                    f"{source} is a directory: name the files to import "
                    f"(for example {os.path.join(source, '*.jsonl')})"
                )
            if source != "-" and not os.path.exists(source):
                raise InputError(f"{source}: no such file")
        with self._locked():
            self.ledger.refresh()
            self._recover()
            settings = self.layout.settings(topic, partitions)
            return [self._import_one(topic, s, settings, progress) for s in sources]

    @contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        """The import lock (yields False when ``wait`` is off and another import holds it)."""
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.layout.lock_file, wait=wait) as held:
            yield held

    # -- staging ---------------------------------------------------------------------------

    def _import_one(
        self, topic: str, source: str, settings: TopicSettings, progress: Progress | None
    ) -> FileReport:
        import_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        stage = self.layout.staging / import_id
        report = FileReport(source=source if source != "-" else "<stdin>", topic=topic, import_id=import_id)
        journal = self.layout.journal / f"{import_id}.json"
        try:
            # For a regular file a cheap hashing pass spares staging bytes imported before;
            # a pipe can only be read once, so it is hashed while it is staged.
            if Path(source).is_file() and self._imported_before(report, _sha256_of(Path(source))):
                return report
            with _open_source(source) as fh:
                self._stage(fh, report, stage, settings, progress)
            if self._imported_before(report, report.sha256):
                shutil.rmtree(stage, ignore_errors=True)
                return report
            self._commit(report, stage, journal)
        except BaseException:
            if not journal.exists():  # not committed: nothing may remain
                shutil.rmtree(stage, ignore_errors=True)
            raise
        log.info("import.done", **report.as_dict())
        return report

    def _imported_before(self, report: FileReport, sha256: str) -> bool:
        """Mark ``report`` as a duplicate if these exact bytes were imported into its topic."""
        prior = self.ledger.find(report.topic, sha256)
        if prior is None:
            return False
        report.sha256, report.duplicate_of = sha256, prior["id"]
        log.info("import.duplicate", source=report.source, previous=prior["id"])
        return True

    def _stage(
        self,
        fh: IO[bytes],
        report: FileReport,
        stage: Path,
        settings: TopicSettings,
        progress: Progress | None,
    ) -> None:
        digest = hashlib.sha256()
        kinds: Counter[str] = Counter()
        hours: set[int] = set()
        types: dict[str, int] = {}
        data_dir = stage / "data"
        dead_path = stage / "deadletter.jsonl"
        data_dir.mkdir(parents=True)
        batch: list[bytes] = []
        first_line = 1  # line number of batch[0]
        carry = b""
        with dead_path.open("wb") as dead:
            first = True
            while chunk := fh.read(CHUNK_BYTES):
                digest.update(chunk)
                if first:  # a UTF-8 byte order mark (Excel, PowerShell) is not part of a record
                    chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
                if progress:
                    progress(len(chunk))
                lines = (carry + chunk).split(b"\n")
                carry = lines.pop()
                batch.extend(lines)
                if len(batch) >= BATCH_LINES:
                    self._stage_batch(batch, first_line, report, kinds, hours, types, data_dir, dead, settings)
                    first_line += len(batch)
                    batch = []
            if carry:
                batch.append(carry)
            self._stage_batch(batch, first_line, report, kinds, hours, types, data_dir, dead, settings)
        report.sha256 = digest.hexdigest()
        report.corrupt_by_kind = dict(sorted(kinds.items()))
        if hours:
            report.first_hour = hour_label(min(hours))
            report.last_hour = hour_label(max(hours))
        report.event_types = {t: hour_label(h) for t, h in sorted(types.items())}
        report.files = sum(1 for _ in data_dir.rglob("*.jsonl"))

    def _stage_batch(
        self,
        batch: list[bytes],
        first_line: int,
        report: FileReport,
        kinds: Counter[str],
        hours: set[int],
        types: dict[str, int],
        data_dir: Path,
        dead: IO[bytes],
        settings: TopicSettings,
    ) -> None:
        topic = report.topic
        events = topic == "events"
        out: list[bytes] = []
        user_ids: list[int] = []
        hour_of: list[int] = []
        blank = 0
        for offset, line in enumerate(batch):
            if not line or line.isspace():  # not a record; JSON parsing ignores a trailing \r
                blank += 1
                continue
            try:
                record, archived = parse_for_archive(line, topic)
            except Corrupt as bad:
                kinds[bad.kind] += 1
                dead.write(orjson.dumps({
                    "source": report.source, "line": first_line + offset, "kind": bad.kind,
                    "reason": str(bad), "raw": line.rstrip(b"\r").decode("utf-8", "replace"),
                }) + b"\n")
                continue
            out.append(archived)
            user_ids.append(record["user_id"])
            hour_of.append(record["ts"])
            if events:
                hour = record["ts"] // HOUR_MS
                if hour < types.get(record["event_type"], hour + 1):
                    types[record["event_type"]] = hour
        report.lines += len(batch) - blank
        report.corrupt = sum(kinds.values())
        if not out:
            return
        report.records += len(out)
        parts = partitions_of(np.array(user_ids, dtype=np.int64), settings.partitions)
        keys = np.array(hour_of, dtype=np.int64) // HOUR_MS * settings.partitions + parts
        order = np.argsort(keys, kind="stable")  # stable: arrival order within a file
        bounds = np.flatnonzero(np.diff(keys[order])) + 1
        lines = np.array(out, dtype=object)
        topic_dir = self.layout.topic_dir(topic)
        for idx in np.split(order, bounds):
            hour, partition = divmod(int(keys[idx[0]]), settings.partitions)
            hours.add(hour)
            rel = self.layout.part_file(topic, hour, partition).relative_to(topic_dir)
            target = data_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("ab") as fh:
                fh.write(b"\n".join(lines[idx]) + b"\n")

    # -- commit and apply --------------------------------------------------------------------

    def _commit(self, report: FileReport, stage: Path, journal: Path) -> None:
        """Make the staging durable, write the journal (the commit point), then apply it."""
        topic_dir = self.layout.topic_dir(report.topic)
        data_dir = stage / "data"
        targets = []
        for staged in sorted(data_dir.rglob("*.jsonl")):
            rel = staged.relative_to(data_dir)
            final = topic_dir / rel
            targets.append({
                "rel": str(rel),
                "size_before": final.stat().st_size if final.exists() else 0,
                "staged_size": _fsync_file(staged),
            })
        entry = report.as_dict() | {"imported_at": datetime.now(UTC).isoformat()}
        if report.corrupt:
            dead = self._deadletter_path(report.topic, report.import_id)
            # Relative to the home, like every path the archive keeps: a moved home still works.
            entry["deadletter"] = str(dead.relative_to(self.home.root))
            entry["deadletter_size"] = _fsync_file(stage / "deadletter.jsonl")
            report.deadletter = str(dead)
        for directory in [stage, *(d for d in stage.rglob("*") if d.is_dir())]:
            fsync_dir(directory)
        with file_lock(self.layout.apply_lock):
            _write_atomic(journal, orjson.dumps({"entry": entry, "targets": targets}))
            self._apply(journal)

    def _apply(self, journal: Path) -> bool:
        """Apply a committed import exactly once; roll it back if its staging was lost."""
        spec = orjson.loads(journal.read_bytes())
        entry = spec["entry"]
        import_id = entry["import_id"]
        stage = self.layout.staging / import_id
        topic_dir = self.layout.topic_dir(entry["topic"])
        applied = True
        dead = self._deadletter_path(entry["topic"], import_id) if entry.get("deadletter") else None
        if not self.ledger.has(import_id):
            lost = _lost_staging(spec, stage, dead)
            if lost:
                _roll_back(spec, topic_dir, dead)
                log.error("import.rolled_back", source=entry["source"], import_id=import_id,
                          reason=lost, action="import the file again")
                applied = False
            else:
                for target in spec["targets"]:
                    _append_exactly(stage / "data" / target["rel"], topic_dir / target["rel"],
                                    target["size_before"])
                if dead is not None:
                    staged_dead = stage / "deadletter.jsonl"
                    if staged_dead.exists():
                        dead.parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(staged_dead, dead)
                    fsync_dir(dead.parent)
                self.ledger.append({"id": import_id} | entry)
        journal.unlink()
        shutil.rmtree(stage, ignore_errors=True)
        return applied

    def recover(self, *, wait: bool = True) -> int | None:
        """Finish imports that committed but did not complete; drop uncommitted staging.

        A committed import is rolled forward; if its staged data was lost (say, a disk that
        failed to keep unsynced writes), it is rolled back instead and logged as an error,
        and the file can simply be imported again. Returns how many journals were handled,
        or ``None`` when ``wait`` is off and another import holds the lock (that import
        recovers them itself). Every import and every reader (:mod:`udf.archive.view`) does
        this first.
        """
        with self._locked(wait) as held:
            if not held:
                return None
            self.ledger.refresh()
            return self._recover()

    def _recover(self) -> int:
        handled = 0
        journals = sorted(self.layout.journal.glob("*.json"))
        if journals:
            with file_lock(self.layout.apply_lock):
                for journal in journals:
                    log.warning("import.recover", journal=str(journal))
                    self._apply(journal)
                    handled += 1
        if self.layout.staging.exists():
            for leftover in self.layout.staging.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
        return handled

    def _deadletter_path(self, topic: str, import_id: str) -> Path:
        return self.home.deadletter / topic / f"{import_id}.jsonl"


@contextmanager
def _open_source(source: str) -> Iterator[IO[bytes]]:
    if source == "-":
        yield sys.stdin.buffer
        return
    try:
        with open(source, "rb") as fh:
            yield fh
    except OSError as exc:
        raise InputError(f"{source}: {exc.strerror or exc}") from exc


def _lost_staging(spec: dict[str, Any], stage: Path, dead: Path | None) -> str | None:
    """Why a journal cannot be rolled forward (staged bytes missing or short), or ``None``."""
    for target in spec["targets"]:
        staged = stage / "data" / target["rel"]
        if not staged.exists() or staged.stat().st_size != target["staged_size"]:
            return f"staged data for {target['rel']} is missing or incomplete"
    if dead is not None:
        staged_dead = stage / "deadletter.jsonl"
        present = staged_dead if staged_dead.exists() else dead
        if not present.exists() or present.stat().st_size != spec["entry"]["deadletter_size"]:
            return "staged dead letters are missing or incomplete"
    return None


def _roll_back(spec: dict[str, Any], topic_dir: Path, dead: Path | None) -> None:
    """Undo whatever part of an import reached the archive: every target back to its old size."""
    for target in spec["targets"]:
        final = topic_dir / target["rel"]
        if not final.exists():
            continue
        if target["size_before"] == 0:
            final.unlink()
            continue
        with final.open("r+b") as fh:
            fh.truncate(target["size_before"])
            os.fsync(fh.fileno())
    if dead is not None:
        dead.unlink(missing_ok=True)


def _fsync_file(path: Path) -> int:
    """Flush a file to disk; its size."""
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
        return os.fstat(fh.fileno()).st_size


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _append_exactly(staged: Path, final: Path, size_before: int) -> None:
    """Make ``final`` equal its first ``size_before`` bytes followed by ``staged``: idempotent."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        if size_before:
            raise ArchiveError(f"{final} vanished during an import (expected {size_before} bytes)")
        final.touch()
        fsync_dir(final.parent)
    with final.open("r+b") as out, staged.open("rb") as src:
        current = out.seek(0, os.SEEK_END)
        if current < size_before:
            raise ArchiveError(f"{final} shrank during an import ({current} < {size_before} bytes)")
        out.truncate(size_before)
        out.seek(size_before)
        shutil.copyfileobj(src, out, CHUNK_BYTES)
        out.flush()
        os.fsync(out.fileno())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)

