"""Append input files to the archive atomically, dead-lettering corrupt lines.

Each source file is one import: it is read in chunks (hashing its bytes) and staged
(:mod:`udf.archive.staging`: validated, grouped by target ``(hour, partition)`` file,
corrupt lines kept with their reasons), then committed with the archive's journal
(:mod:`udf.archive.journal`), so a crash never leaves half a file imported and a rerun
never doubles one, and no reader ever sees half an import (:mod:`udf.archive.view`). The ledger line of each import holds the file's SHA-256: the same bytes
imported again (under any name) are reported as a duplicate and change nothing.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from udf.archive.journal import ArchiveWriter
from udf.archive.layout import TopicSettings
from udf.archive.staging import ImportReport, Stage, new_import_id
from udf.errors import InputError
from udf.home import Home
from udf.logging import get_logger

log = get_logger(__name__)

CHUNK_BYTES = 8 << 20
BATCH_LINES = 100_000
Progress = Callable[[int], None]


class Importer:
    def __init__(self, home: Home):
        self.home = home
        self.writer = ArchiveWriter(home)
        self.layout = self.writer.layout
        self.ledger = self.writer.ledger

    def import_files(
        self,
        topic: str,
        sources: Sequence[str],
        *,
        partitions: int | None = None,
        progress: Progress | None = None,
    ) -> list[ImportReport]:
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
        with self.writer.locked():
            settings = self.layout.settings(topic, partitions)
            return [self._import_one(topic, s, settings, progress) for s in sources]

    def recover(self, *, wait: bool = True) -> int | None:
        """Finish interrupted imports (see :meth:`ArchiveWriter.recover`)."""
        return self.writer.recover(wait=wait)

    def _import_one(
        self, topic: str, source: str, settings: TopicSettings, progress: Progress | None
    ) -> ImportReport:
        report = ImportReport(
            source=source if source != "-" else "<stdin>", topic=topic, import_id=new_import_id()
        )
        # For a regular file a cheap hashing pass spares staging bytes imported before;
        # a pipe can only be read once, so it is hashed while it is staged.
        if Path(source).is_file() and self._imported_before(report, _sha256_of(Path(source))):
            return report
        stage = self.writer.stage(report, settings)
        journal = self.layout.journal / f"{report.import_id}.json"
        try:
            with _open_source(source) as fh:
                report.sha256 = _stage_stream(fh, stage, progress)
            if self._imported_before(report, report.sha256):
                stage.discard()
                return report
            self.writer.commit(stage)
        except BaseException:
            if not journal.exists():  # not committed: nothing may remain
                stage.discard()
            raise
        log.info("import.done", **report.as_dict())
        return report

    def _imported_before(self, report: ImportReport, sha256: str) -> bool:
        """Mark ``report`` as a duplicate if these exact bytes were imported into its topic."""
        prior = self.ledger.find(report.topic, sha256)
        if prior is None:
            return False
        report.sha256, report.duplicate_of = sha256, prior["id"]
        log.info("import.duplicate", source=report.source, previous=prior["id"])
        return True


def _stage_stream(fh: IO[bytes], stage: Stage, progress: Progress | None) -> str:
    """Stage every line of ``fh`` in batches; the SHA-256 of its bytes."""
    digest = hashlib.sha256()
    batch: list[bytes] = []
    first_line = 1  # line number of batch[0]
    carry = b""

    def flush() -> None:
        first = first_line
        stage.add(batch, lambda i: {"line": first + i})

    opening = True
    while chunk := fh.read(CHUNK_BYTES):
        digest.update(chunk)
        if opening:  # a UTF-8 byte order mark (Excel, PowerShell) is not part of a record
            chunk, opening = chunk.removeprefix(b"\xef\xbb\xbf"), False
        if progress:
            progress(len(chunk))
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        batch.extend(lines)
        if len(batch) >= BATCH_LINES:
            flush()
            first_line += len(batch)
            batch = []
    if carry:
        batch.append(carry)
    flush()
    stage.close()
    return digest.hexdigest()


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


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
