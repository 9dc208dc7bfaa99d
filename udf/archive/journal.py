"""The archive's commit protocol, shared by every writer (file imports, the Kafka archiver).

A staged import (:class:`~udf.archive.staging.Stage`) becomes visible in three steps:

1. **Commit**: fsync the staged data, then write a journal naming every target file, its
   size before the append and its staged segments, and the ledger line to add. The
   journal is the commit point.
2. **Apply**: truncate each target to its recorded size (undoing a torn earlier attempt),
   append its staged segments, fsync (all targets at once), move the dead letters into
   place, add the ledger line.
3. **Clean up**: remove the journal and the staging.

A crash before the journal leaves only staging (the journal is written there and renamed
into place), which the next writer removes; a crash after it is rolled forward by the next writer (:meth:`ArchiveWriter.recover`), so a target
file never holds half an import and a rerun never doubles one. Whatever a writer must
remember atomically with the data (a file's hash, Kafka offsets) goes in its ledger line.
Writers of one archive are serialised by an exclusive lock file (:meth:`ArchiveWriter.locked`),
and steps 1-3 hold the apply lock, which readers share while they take their snapshot
(:mod:`udf.archive.view`): no reader sees an import half-applied. Paths in the ledger are
relative to the home, so a moved home recovers into itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from udf.archive.layout import ArchiveLayout, TopicSettings
from udf.archive.ledger import Ledger
from udf.archive.locks import file_lock
from udf.archive.staging import ImportReport, Stage
from udf.errors import ArchiveError
from udf.home import Home
from udf.logging import get_logger

log = get_logger(__name__)

COPY_BYTES = 8 << 20
FSYNC_THREADS = 16


class ArchiveWriter:
    """Stages, commits and recovers imports into one archive; holds its ledger."""

    def __init__(self, home: Home):
        self.home = home
        self.layout = ArchiveLayout(home.archive)
        self.ledger = Ledger(self.layout.ledger)

    @contextmanager
    def locked(self, *, wait: bool = True) -> Iterator[int | None]:
        """Hold the archive's lock, with the ledger read and any interrupted import finished.

        Yields how many interrupted imports were finished (rolled forward or back), or
        ``None`` without the lock when ``wait`` is off and another writer holds it.
        """
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.layout.lock_file, wait=wait) as held:
            if not held:
                yield None
                return
            self.ledger.refresh()
            yield self._recover()

    def stage(self, report: ImportReport, settings: TopicSettings) -> Stage:
        return Stage(self.layout, report, settings)

    def recover(self, *, wait: bool = True) -> int | None:
        """Finish imports that committed but did not complete; drop uncommitted staging.

        A committed import is rolled forward; if its staged data was lost (say, a disk that
        failed to keep unsynced writes), it is rolled back instead and logged as an error,
        and its source can simply be imported again. Returns how many journals were handled,
        or ``None`` when ``wait`` is off and another writer holds the lock (that writer
        recovers them itself). Every writer does this when it takes the lock, and every
        reader through :func:`udf.archive.view.finish_interrupted_imports`.
        """
        with self.locked(wait=wait) as handled:
            return handled

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

    def commit(self, stage: Stage, extra: Mapping[str, Any] | None = None) -> None:
        """Make the staging durable, write the journal (the commit point), then apply it.

        ``extra`` is added to the ledger line (the caller's own bookkeeping, e.g. offsets).
        The caller holds :meth:`locked`.
        """
        report = stage.report
        topic_dir = self.layout.topic_dir(report.topic)
        targets = []
        for rel, segments in sorted(stage.segments.items()):
            final = topic_dir / rel
            targets.append(
                {
                    "rel": rel,
                    "size_before": final.stat().st_size if final.exists() else 0,
                    "segments": segments,
                }
            )
        staged_size = _fsync_path(stage.data_path)
        entry = (
            report.as_dict() | dict(extra or {}) | {"imported_at": datetime.now(UTC).isoformat()}
        )
        if report.corrupt:
            dead = self.deadletter_path(report.topic, report.import_id)
            # Relative to the home, like every path the archive keeps: a moved home still works.
            entry["deadletter"] = str(dead.relative_to(self.home.root))
            entry["deadletter_size"] = _fsync_path(stage.dead_path)
            report.deadletter = str(dead)
        _fsync_path(stage.dir)
        journal = self.layout.journal / f"{report.import_id}.json"
        with file_lock(self.layout.apply_lock):
            spec = orjson.dumps({"entry": entry, "targets": targets, "staged_size": staged_size})
            _write_atomic(journal, spec, stage.dir / "journal.json")
            self._apply(journal)

    def _apply(self, journal: Path) -> bool:
        """Apply a committed import exactly once; roll it back if its staging was lost."""
        spec = orjson.loads(journal.read_bytes())
        entry = spec["entry"]
        import_id = entry["import_id"]
        stage = self.layout.staging / import_id
        topic_dir = self.layout.topic_dir(entry["topic"])
        applied = True
        dead = self.deadletter_path(entry["topic"], import_id) if entry.get("deadletter") else None
        if not self.ledger.has(import_id):
            lost = _lost_staging(spec, stage, dead)
            if lost:
                _roll_back(spec, topic_dir, dead)
                log.error(
                    "import.rolled_back",
                    source=entry["source"],
                    import_id=import_id,
                    reason=lost,
                    action="import the source again",
                )
                applied = False
            else:
                finals = [topic_dir / target["rel"] for target in spec["targets"]]
                with (stage / "data.bin").open("rb") as staged:
                    for target, final in zip(spec["targets"], finals, strict=True):
                        _append_exactly(staged, target["segments"], final, target["size_before"])
                # every target and its (maybe new) hour=, dt= folder durable before the ledger line
                hours = {f.parent for f in finals}
                _fsync_many([*finals, *hours, *{h.parent for h in hours}, topic_dir])
                if dead is not None:
                    staged_dead = stage / "deadletter.jsonl"
                    if staged_dead.exists():
                        dead.parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(staged_dead, dead)
                    _fsync_path(dead.parent)
                self.ledger.append({"id": import_id} | entry)
        journal.unlink()
        shutil.rmtree(stage, ignore_errors=True)
        return applied

    def deadletter_path(self, topic: str, import_id: str) -> Path:
        return self.home.deadletter / topic / f"{import_id}.jsonl"


def _lost_staging(spec: dict[str, Any], stage: Path, dead: Path | None) -> str | None:
    """Why a journal cannot be rolled forward (staged bytes missing or short), or ``None``."""
    staged = stage / "data.bin"
    if not staged.exists() or staged.stat().st_size != spec["staged_size"]:
        return "the staged data is missing or incomplete"
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


def _append_exactly(
    staged: IO[bytes], segments: list[list[int]], final: Path, size_before: int
) -> None:
    """Make ``final`` its first ``size_before`` bytes followed by its ``segments`` of ``staged``.

    Idempotent. Not synced here: the caller syncs every target of an import at once
    (:func:`_fsync_many`).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        if size_before:
            raise ArchiveError(f"{final} vanished during an import (expected {size_before} bytes)")
        final.touch()
    with final.open("r+b") as out:
        current = out.seek(0, os.SEEK_END)
        if current < size_before:
            raise ArchiveError(f"{final} shrank during an import ({current} < {size_before} bytes)")
        out.truncate(size_before)
        out.seek(size_before)
        for offset, length in segments:
            staged.seek(offset)
            while length > 0:
                chunk = staged.read(min(length, COPY_BYTES))
                if not chunk:
                    raise ArchiveError(f"the staged data of {final.name} ends early")
                out.write(chunk)
                length -= len(chunk)


def _fsync_many(paths: Iterable[Path]) -> list[int]:
    """fsync files and folders concurrently (the file system batches them); their sizes.

    An import touches one file per (hour, partition): one fsync after another would cost a
    disk flush each, while concurrent ones share them (8-16x faster on ext4 here).
    """
    todo = list(paths)
    if len(todo) <= 1:
        return [_fsync_path(p) for p in todo]
    with ThreadPoolExecutor(max_workers=min(FSYNC_THREADS, len(todo))) as pool:
        return list(pool.map(_fsync_path, todo))


def _fsync_path(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, tmp: Path) -> None:
    """Write ``data`` to ``tmp`` (on the same file system), then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    _fsync_path(path.parent)
